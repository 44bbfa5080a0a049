"""Process-wide thread settings: torch's thread count and glibc's malloc arenas (pipeline/backends/threads.py)."""

from __future__ import annotations

import sys

import pytest


def test_the_malloc_arena_limit_is_set_unless_the_environment_sets_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.backends.threads import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False  # the operator's setting wins
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert limit_malloc_arenas() is sys.platform.startswith("linux")  # glibc's mallopt accepts it


def test_native_threads_are_pinned_to_one_unless_the_environment_sets_a_count(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2
    from threadpoolctl import threadpool_info

    from pipeline.backends.threads import pin_native_threads

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert pin_native_threads() == ["opencv"]  # the operator's BLAS setting wins
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    pinned = pin_native_threads()
    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert any("scipy" in lib["filepath"] for lib in blas)  # scipy's own copy is loaded first, so it is pinned too
    assert {lib["num_threads"] for lib in blas} == {1}
    assert len(pinned) == 1 + len(blas) and cv2.getNumThreads() == 1
