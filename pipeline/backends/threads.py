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

One thread: a body fit is ~1000 tiny ops a step, and when the avatar and wardrobe phases run side by side each
op's thread barrier waits for a time slice (measured 0.49 -> 3.4 s with two threads, 0.58 s with one).
"""

from __future__ import annotations

import ctypes
import os
import sys
from importlib.util import find_spec

TORCH_THREADS = 1
MALLOC_ARENAS = 2  # glibc's malloc arenas: one per thread by default (up to 8 per core)
M_ARENA_MAX = -8  # glibc's mallopt() parameter for that limit


def pin_torch_threads(threads: int | None = TORCH_THREADS) -> None:
    """Set the count now if nothing set it yet (None, or torch not installed: leave it)."""
    if threads is None or find_spec("torch") is None:
        return
    from pipeline.render.raster import set_torch_threads_once

    set_torch_threads_once(threads)


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
