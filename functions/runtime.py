"""The local runtime: events in, router, a worker pool that runs ready tasks, retries with backoff.

Events (from the folder store's own writes, the folder watcher, an SQS queue) go onto one queue; a
dispatcher routes them to tasks; a pool of worker threads runs the tasks through the handlers. A task
already running in this process is not started twice (a second request re-checks it afterwards);
across processes the claims do that. `sweep()` asks storage for everything due, so a lost event or a
dead worker delays work but never loses it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import structlog

from events.contracts import ObjectEvent
from events.router import pending_tasks, route
from events.tasks import Task
from functions.handlers import Handlers, StepOutcome
from pipeline.backoff import backoff_s

log = structlog.get_logger("dropfit.runtime")

class _Stop:
    """The dispatcher's last item: it returns on taking it."""


_STOP = _Stop()


class LocalRuntime:
    def __init__(self, handlers: Handlers, *, workers: int = 2, max_attempts: int = 3, retry_base_s: float = 0.5,
                 retry_cap_s: float = 10.0, on_outcome: Callable[[StepOutcome], None] | None = None,
                 on_start: Callable[[Task], None] | None = None) -> None:
        self.handlers = handlers
        self.store = handlers.store
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.retry_cap_s = retry_cap_s
        self._on_outcome = on_outcome
        self._on_start = on_start
        self._queue: queue.Queue[ObjectEvent | Task | _Stop] = queue.Queue()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dropfit-worker")
        self._cond = threading.Condition()
        self._pending = 0
        self._inflight: dict[str, bool] = {}  # task ident -> asked again while running
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="dropfit-dispatch", daemon=True)
        self.outcomes: list[StepOutcome] = []
        self._started = False

    # ---- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> LocalRuntime:
        if not self._started:
            self._started = True
            self._dispatcher.start()
        return self

    def stop(self) -> None:
        if self._started:
            self._queue.put(_STOP)
            self._dispatcher.join()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- input --------------------------------------------------------------------------------------

    def submit_event(self, event: ObjectEvent) -> None:
        with self._cond:
            self._pending += 1
        self._queue.put(event)

    def submit(self, task: Task) -> None:
        with self._cond:
            self._pending += 1
        self._queue.put(task)

    def sweep(self) -> list[Task]:
        """Queue everything storage says is due; returns those tasks."""
        clean = getattr(self.store, "clean_temp", None)
        if callable(clean):
            clean(3600.0)
        tasks = pending_tasks(self.store)
        for task in tasks:
            self.submit(task)
        return tasks

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or running. False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    @property
    def idle(self) -> bool:
        with self._cond:
            return self._pending == 0

    # ---- dispatch -----------------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, _Stop):
                return
            try:
                tasks = route(item, self.store) if isinstance(item, ObjectEvent) else [item]
                for task in tasks:
                    self._schedule(task)
            except Exception:  # noqa: BLE001 - a bad event must not stop the runtime; the sweeper covers it
                log.exception("route.failed", item=str(item)[:300])
            finally:
                self._done_one()

    def _schedule(self, task: Task) -> None:
        with self._cond:
            if task.ident in self._inflight:
                self._inflight[task.ident] = True
                return
            self._inflight[task.ident] = False
            self._pending += 1
        self._pool.submit(self._work, task)

    def _done_one(self) -> None:
        with self._cond:
            self._pending -= 1
            self._cond.notify_all()

    def _work(self, task: Task) -> None:
        settled = False
        try:
            outcome = self._run_with_retries(task)
            self.outcomes.append(outcome)
            # a content-keyed run that is done stays done: asking again while it ran changes nothing.
            # Job and batch steps re-check, since their inputs (a replaced photo) may have changed.
            settled = task.is_phase and outcome.outcome in ("done", "skipped")
            if self._on_outcome is not None:
                self._on_outcome(outcome)
        except Exception:  # noqa: BLE001 - keep the pool alive; log what happened
            log.exception("task.crashed", task=task.ident)
        finally:
            with self._cond:
                again = self._inflight.pop(task.ident, False)
            if again and not settled:
                self.submit(task)
            self._done_one()

    def _run_with_retries(self, task: Task) -> StepOutcome:
        for attempt in range(1, self.max_attempts + 1):
            if self._on_start is not None:
                self._on_start(task)
            try:
                return self.handlers.execute(task, attempt)
            except Exception as exc:  # noqa: BLE001 - retryable and unexpected errors retry alike
                if attempt == self.max_attempts:
                    return self.handlers.give_up(task, exc, attempt)
                delay = backoff_s(attempt, self.retry_base_s, self.retry_cap_s)
                log.warning("step.retry", step=task.step, subject=task.subject, attempt=attempt,
                            error=f"{type(exc).__name__}: {exc}", retry_in_s=round(delay, 2))
                time.sleep(delay)
        raise AssertionError("unreachable")

    # ---- driving to completion ----------------------------------------------------------------------

    def run_until(self, finished: Callable[[], bool], *, timeout: float | None = None,
                  poll_s: float = 0.05) -> bool:
        """Process until `finished()` or until nothing more can happen here (idle, and no claim held by
        another worker is pending). Re-sweeps while other workers hold claims, so their work is taken
        over once their lease runs out. True if finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if finished():
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            if not self.wait_idle(timeout=min(poll_s, remaining) if remaining is not None else poll_s):
                continue
            if finished():
                return True
            seen = len(self.outcomes)
            if not self.sweep():
                return finished()
            self.wait_idle(timeout=remaining)
            recent = self.outcomes[seen:]
            # "skipped" means another worker got there first: storage moved on, so sweep again; only work
            # that cannot run here (a missing phase, a step that gave up) ends the wait early
            if recent and all(o.outcome in ("unavailable", "failed") for o in recent):
                return finished()
            if any(o.outcome == "busy" for o in recent):
                time.sleep(poll_s)
