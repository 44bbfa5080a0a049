"""torch's intra-op thread count: fixed once per process, on the main thread, before any worker thread starts.

torch hands each thread that starts using it the count set last, from any thread. Setting and restoring it
around each call, from worker threads at once, gave other threads whatever count was current as they started,
and with it another order of their float reductions: the same job's fitting and viewer3d bytes changed with
what ran beside it. So the local runtime and each Modal phase container call `pin_torch_threads()` at start,
and no backend changes the count afterwards (`pipeline/render/raster.py` holds the once-only setter).

glibc gives each thread that contends for malloc an arena of its own, and freed memory stays in the arena that
allocated it: with the runtime's worker, intake, finish, render and preload threads, a 2 x 9 catalog's worker
peaked at 1.65 to 1.71 GB; with two arenas at 1.31 GB, and 7 % faster (`bench.catalog`). `limit_malloc_arenas()`
sets that limit with mallopt() at start, as `MALLOC_ARENA_MAX=2` would (an explicit MALLOC_ARENA_MAX wins).

OpenBLAS (numpy's and scipy's own copies) and OpenCV start a thread per core, and the runtime's workers call
them from threads of their own: on 2 cores with 2 workers each small product or distance transform then waits for
a time slice (a (656k, 3) x (3, 3) product 3x slower under load, a distance transform 4x). `pin_native_threads()`
sets both to one thread at start, through threadpoolctl for the BLAS libraries (the environment's
`OPENBLAS_NUM_THREADS`, where set, wins); a 2 x 9 catalog's CPU time dropped by ~7 % (docs/speed.md).

One thread: a body fit is ~1000 tiny ops a step, and when the avatar and wardrobe phases run side by side each
op's thread barrier waits for a time slice (measured 0.49 -> 3.4 s with two threads, 0.58 s with one).
"""

from __future__ import annotations

import ctypes
import os
import sys
from importlib.util import find_spec
from pathlib import Path

TORCH_THREADS = 1
NATIVE_THREADS = 1  # OpenCV's and OpenBLAS's
MALLOC_ARENAS = 2  # glibc's malloc arenas: one per thread by default (up to 8 per core)
M_ARENA_MAX = -8  # glibc's mallopt() parameter for that limit


def pin_torch_threads(threads: int | None = TORCH_THREADS) -> None:
    """Set the count now if nothing set it yet (None, or torch not installed: leave it)."""
    if threads is None or find_spec("torch") is None:
        return
    from pipeline.render.raster import set_torch_threads_once

    set_torch_threads_once(threads)


def pin_native_threads(threads: int = NATIVE_THREADS) -> list[str]:
    """One thread for OpenCV and for every BLAS library loaded now, scipy's loaded first so it is among them
    (a library loaded later keeps its own count). Returns what was pinned; no BLAS library where threadpoolctl
    is not installed or the environment sets `OPENBLAS_NUM_THREADS`."""
    pinned: list[str] = []
    if find_spec("cv2") is not None:
        import cv2

        cv2.setNumThreads(threads)
        pinned.append("opencv")
    if "OPENBLAS_NUM_THREADS" in os.environ or find_spec("threadpoolctl") is None:
        return pinned
    if find_spec("scipy") is not None:
        import scipy.linalg  # noqa: F401  (loads scipy's own OpenBLAS, so the limit reaches it)
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")
    return pinned + [Path(lib["filepath"]).name for lib in threadpool_info() if lib["user_api"] == "blas"]


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Limit glibc's malloc arenas for threads started from now on; whether the limit was set (not on another
    libc or platform, nor where MALLOC_ARENA_MAX is already in the environment)."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))
