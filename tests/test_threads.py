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
