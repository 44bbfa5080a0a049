"""A small pool of worker threads for the local runtime: a priority queue whose waiting items can be taken
back, and threads that never keep a stopping process alive.

Why not `ThreadPoolExecutor`: its threads are joined at interpreter exit, so a phase that cannot be
interrupted (a model's forward pass) would hold a stopped `dropfit watch` until it ends; and its queue is
FIFO only. Here the threads are daemons (the runtime releases the claims of what it abandons, so another
worker takes over at once), `drop_waiting()` hands back what has not started, and a lower `priority` runs
first (ties in submission order).
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Closed:
    """A worker thread's last item: it returns on taking it."""


_CLOSED = _Closed()


class WorkerPool(Generic[T]):
    """`size` threads calling `run(item)` for each submitted item, lowest `priority` first."""

    def __init__(self, size: int, name: str, run: Callable[[T], None]) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one thread")
        self._size = size
        self._name = name
        self._run = run
        self._queue: queue.PriorityQueue[tuple[float, int, T | _Closed]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def start(self) -> None:
        with self._lock:
            if self._threads or self._closed:
                return
            self._threads = [threading.Thread(target=self._loop, name=f"{self._name}-{i}", daemon=True)
                             for i in range(self._size)]
        for thread in self._threads:
            thread.start()

    def submit(self, item: T, priority: float = 0.0) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self._name} pool is closed")
        self._queue.put((priority, next(self._order), item))

    def drop_waiting(self) -> list[T]:
        """Take back every item that has not started; returns them."""
        dropped: list[T] = []
        while True:
            try:
                _, _, item = self._queue.get_nowait()
            except queue.Empty:
                return dropped
            if isinstance(item, _Closed):
                self._queue.put((float("inf"), next(self._order), item))
                return dropped
            dropped.append(item)

    def close(self) -> list[T]:
        """No more items; returns the ones still waiting (dropped). Running items go on to their end."""
        with self._lock:
            self._closed = True
        dropped = self.drop_waiting()
        for _ in self._threads:
            self._queue.put((float("inf"), next(self._order), _CLOSED))
        return dropped

    def _loop(self) -> None:
        while True:
            _, _, item = self._queue.get()
            if isinstance(item, _Closed):
                return
            self._run(item)
