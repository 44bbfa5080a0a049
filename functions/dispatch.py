"""The dispatcher seam: a ready task goes to the local runtime (run in this process) or to Modal (spawned).

Both intake routes (an SQS queue, the EventBridge endpoint) normalize events, route them against storage
and hand the tasks to a `Dispatcher`. `LocalRuntime` is one (it runs the handlers in its worker pool);
`SpawnDispatcher` is the other: each task becomes one call of the Modal function for its step, started with
`.spawn()` and not waited for. Tests give `SpawnDispatcher` plain callables (or a Modal function's
`.local`), so they never reach Modal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import structlog

from events.contracts import ObjectEvent
from events.router import route
from events.tasks import Task
from pipeline.storage import ObjectStore

log = structlog.get_logger("dropfit.dispatch")

Spawn = Callable[[str, str, str], object]  # (step, subject, bucket) -> a call handle, not awaited


class Dispatcher(Protocol):
    @property
    def store(self) -> ObjectStore: ...

    def submit(self, task: Task) -> None:
        """Start the task, or raise: the caller then keeps the event that made it (it is redelivered)."""
        ...

    def wait_idle(self, timeout: float | None = None) -> bool: ...


class SpawnDispatcher:
    """Modal mode. `spawners[step]` starts that step's function (a phase's GPU or CPU class, the CPU task
    runner); `default` starts any other step. The same task asked again within `dedupe_s` is not spawned
    twice (a duplicate event would otherwise start a container just to find the work claimed), nor is a
    step that `available(step)` says this build cannot run (a GPU container to learn that, every sweep)."""

    def __init__(self, store: ObjectStore, spawners: Mapping[str, Spawn], default: Spawn, *,
                 available: Callable[[str], bool] | None = None, dedupe_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._spawners = dict(spawners)
        self._default = default
        self._available = available or (lambda step: True)
        self._dedupe_s = dedupe_s
        self._clock = clock
        self._recent: dict[str, float] = {}
        self.spawned: list[Task] = []

    @property
    def store(self) -> ObjectStore:
        return self._store

    def submit(self, task: Task) -> None:
        now = self._clock()
        if now - self._recent.get(task.ident, -self._dedupe_s - 1) <= self._dedupe_s:
            log.debug("dispatch.duplicate", task=task.ident)
            return
        if not self._available(task.step):
            log.info("dispatch.unavailable", step=task.step, subject=task.subject)
            return
        self._spawners.get(task.step, self._default)(task.step, task.subject, self._store.bucket)
        self._recent[task.ident] = now
        self.spawned.append(task)
        log.info("dispatch.spawned", step=task.step, subject=task.subject, bucket=self._store.bucket)

    def wait_idle(self, timeout: float | None = None) -> bool:
        return True  # spawned calls run elsewhere; their writes come back as events


def ours(events: Iterable[ObjectEvent], bucket: str) -> list[ObjectEvent]:
    """The events of this bucket; others (a misconfigured notification) are logged and left alone."""
    kept = []
    for event in events:
        if event.bucket == bucket:
            kept.append(event)
        else:
            log.warning("dispatch.foreign_bucket", bucket=event.bucket, key=event.key, serving=bucket)
    return kept


def dispatch_events(events: Iterable[ObjectEvent], dispatcher: Dispatcher) -> list[Task]:
    """Route each event of the dispatcher's bucket against storage; submit every ready task once."""
    tasks: list[Task] = []
    for event in ours(events, dispatcher.store.bucket):
        tasks += [t for t in route(event, dispatcher.store) if t not in tasks]
    for task in tasks:
        dispatcher.submit(task)
    return tasks
