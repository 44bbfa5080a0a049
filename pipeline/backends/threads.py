"""torch's intra-op thread count: fixed once per process, on the main thread, before any worker thread starts.

torch hands each thread that starts using it the count set last, from any thread. Setting and restoring it
around each call, from worker threads at once, gave other threads whatever count was current as they started,
and with it another order of their float reductions: the same job's fitting and viewer3d bytes changed with
what ran beside it. So the local runtime and each Modal phase container call `pin_torch_threads()` at start,
and no backend changes the count afterwards (`pipeline/render/raster.py` holds the once-only setter).

One thread: a body fit is ~1000 tiny ops a step, and when the avatar and wardrobe phases run side by side each
op's thread barrier waits for a time slice (measured 0.49 -> 3.4 s with two threads, 0.58 s with one).
"""

from __future__ import annotations

from importlib.util import find_spec

TORCH_THREADS = 1


def pin_torch_threads(threads: int | None = TORCH_THREADS) -> None:
    """Set the count now if nothing set it yet (None, or torch not installed: leave it)."""
    if threads is None or find_spec("torch") is None:
        return
    from pipeline.render.raster import set_torch_threads_once

    set_torch_threads_once(threads)
