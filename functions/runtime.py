"""The local runtime: events in, router, worker threads that run ready tasks, retries with backoff.

Events (from the folder store's own writes, the folder watcher, an SQS queue) go onto one queue; a
dispatcher routes them to tasks; worker threads run the tasks through the handlers. Phase runs (long: a
model's work) and the orchestration steps (short) never share threads: intake and batch (they read and
check the uploads) and publish, fail and report (they finish jobs) each have two threads of their own, so a
job whose runs are done is published at once however many phase runs are waiting. Among waiting phase
runs, later phases go first, so a job under way finishes before new ones start. A task already waiting or
running in this process is not started twice (a second request re-checks it afterwards); across processes
the claims do that. `sweep()` asks storage for everything due, starts the subscriber deliveries whose retry
time has come and clears leftover claims, so a lost event or a dead worker delays work but never loses it.

`stop(grace_s)` stops at once: nothing new is taken, what waits is dropped (storage still says it is due:
the next sweep, here or in another worker, runs it; none of it holds a claim), and what runs may finish for
`grace_s`. A phase cannot be interrupted mid-computation, so after the grace its claim is released (another
worker takes the run over at once, and this one does not commit) and the stop returns; the threads are
daemons, so the process can exit.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable

import structlog

from events.contracts import ObjectEvent
from events.router import pending_tasks, route
from events.tasks import Task
from functions.handlers import Handlers, StepOutcome
from functions.workers import WorkerPool
from pipeline.backends.threads import limit_malloc_arenas, pin_native_threads, pin_torch_threads
from pipeline.backoff import backoff_s

log = structlog.get_logger("dropfit.runtime")

INTAKE_STEPS = frozenset({"intake", "batch"})  # their own threads: they read and check uploads
STEP_THREADS = 2  # threads of each orchestration lane


class _Stop:
    """The dispatcher's last item: it returns on taking it."""


_STOP = _Stop()


class LocalRuntime:
    def __init__(self, handlers: Handlers, *, workers: int = 2, max_attempts: int = 3, retry_base_s: float = 0.5,
                 retry_cap_s: float = 10.0, on_outcome: Callable[[StepOutcome], None] | None = None,
                 on_start: Callable[[Task], None] | None = None, preload: bool = False) -> None:
        self.handlers = handlers
        self._preload = preload
        self.store = handlers.store
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.retry_cap_s = retry_cap_s
        self._on_outcome = on_outcome
        self._on_start = on_start
        self._queue: queue.Queue[ObjectEvent | Task | _Stop] = queue.Queue()
        self._phases = WorkerPool[Task](workers, "dropfit-worker", self._work)
        self._intake = WorkerPool[Task](STEP_THREADS, "dropfit-intake", self._work)
        self._finish = WorkerPool[Task](STEP_THREADS, "dropfit-finish", self._work)
        self._depth = {name: i for i, name in enumerate(handlers.registry.table.names)}
        self._cond = threading.Condition()
        self._pending = 0  # events and tasks queued or running
        self._inflight: dict[str, bool] = {}  # task ident -> asked again while waiting or running
        self._submitted: Counter[str] = Counter()  # task idents submitted, not yet scheduled
        self._running: dict[str, Task] = {}
        self._closed = threading.Event()
        self._redelivering = threading.Lock()
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="dropfit-dispatch", daemon=True)
        self.outcomes: list[StepOutcome] = []
        self._started = False

    # ---- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> LocalRuntime:
        if not self._started:
            self._started = True
            pin_torch_threads()  # before any worker thread: torch hands each new thread the count set last
            limit_malloc_arenas()  # and glibc an arena of its own (pipeline/backends/threads.py)
            pin_native_threads()  # and OpenBLAS and OpenCV one thread each: the workers are the parallelism
            if self._preload:
                threading.Thread(target=self._warm_up, name="dropfit-preload", daemon=True).start()
            for pool in (self._phases, self._intake, self._finish):
                pool.start()
            self._dispatcher.start()
        return self

    def _warm_up(self) -> None:
        """Load the phases' models, first phase first, while intake reads the upload and the first phase starts
        (a phase that needs a model still loading waits for it on the backend's lock). A model that fails to
        load here is only logged: its phase loads it again and reports the error with the job."""
        registry = self.handlers.registry
        for name in registry.table.names:
            if self._closed.is_set():
                return
            started = time.monotonic()
            try:
                registry.warm_up(name)
            except Exception as err:  # noqa: BLE001 - best effort; the phase's own call is the one that reports
                log.warning("runtime.preload_failed", phase=name, error=f"{type(err).__name__}: {err}")
                continue
            log.debug("runtime.preloaded", phase=name, seconds=round(time.monotonic() - started, 2))

    def close(self) -> tuple[int, list[Task]]:
        """Stop taking work, at once: events and tasks submitted from now on are ignored, and those waiting
        are dropped (none holds a claim; storage still says they are due). Returns (how many were dropped,
        the tasks still running)."""
        self._closed.set()
        dropped = [t for pool in (self._phases, self._intake, self._finish) for t in pool.close()]
        with self._cond:
            for task in dropped:
                self._inflight.pop(task.ident, None)
            self._pending -= len(dropped)
            self._cond.notify_all()
            running = list(self._running.values())
        if dropped:
            log.info("runtime.dropped", tasks=len(dropped), detail="left for the next sweep or another worker")
        return len(dropped), running

    @property
    def running(self) -> list[Task]:
        """The tasks running now."""
        with self._cond:
            return list(self._running.values())

    def wait_running(self, timeout: float | None = None) -> bool:
        """After `close()`: wait until no task runs, at most `timeout` s. False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout)

    def release_running(self) -> list[Task]:
        """Give up the claims of the tasks still running (another worker takes them over at once; these do
        not commit); returns their tasks."""
        released = self.handlers.release_claims("this worker is stopping")
        if released:
            log.warning("runtime.released", tasks=[t.ident for t in released],
                        detail="still running at stop: claims released for another worker")
        return released

    def stop(self, grace_s: float | None = None, deliveries_s: float | None = None) -> list[Task]:
        """`close()`, let the running tasks finish for `grace_s` (None: however long they take), release the
        claims of those still running, then wait for the subscriber deliveries in progress for `deliveries_s`
        (None: until they end; each is bounded by the inline budget). Returns the tasks whose claims were
        released."""
        self.close()
        released = [] if self.wait_running(grace_s) else self.release_running()
        if self._started and self._dispatcher.is_alive():
            self._queue.put(_STOP)
            self._dispatcher.join(timeout=5.0)
        self.settle_deliveries(deliveries_s)
        return released

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- input --------------------------------------------------------------------------------------

    def submit_event(self, event: ObjectEvent) -> None:
        if self._closed.is_set():
            return
        with self._cond:
            self._pending += 1
        self._queue.put(event)

    def submit(self, task: Task) -> None:
        if self._closed.is_set():
            return
        with self._cond:
            self._pending += 1
            self._submitted[task.ident] += 1
        self._queue.put(task)

    def sweep(self) -> list[Task]:
        """Queue everything storage says is due, start the deliveries due for a retry, clear leftover
        claims; returns the tasks."""
        if self._closed.is_set():
            return []
        clean = getattr(self.store, "clean_temp", None)
        if callable(clean):
            clean(3600.0)
        tasks = pending_tasks(self.store)
        for task in tasks:
            self.submit(task)
        self.redeliver()
        try:
            self.handlers.clear_leftover_claims()
        except Exception:  # noqa: BLE001 - housekeeping must not stop a sweep
            log.exception("sweep.claims_failed")
        return tasks

    def redeliver(self) -> None:
        """Start the subscriber deliveries whose retry time has come, in the background (one pass at a time)."""
        if self._closed.is_set() or not self._redelivering.acquire(blocking=False):
            return

        def run() -> None:
            try:
                started = self.handlers.redeliver_due()
                if started:
                    log.info("sweep.redelivering", deliveries=started)
            except Exception:  # noqa: BLE001 - the records stay pending; the next sweep tries again
                log.exception("sweep.redeliver_failed")
            finally:
                self._redelivering.release()

        threading.Thread(target=run, name="dropfit-redeliver", daemon=True).start()

    def settle_deliveries(self, timeout: float | None = None) -> int:
        """Wait for a redelivery pass in progress and every delivery it or a step started, at most `timeout` s;
        returns how many deliveries are still going."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._redelivering.acquire(timeout=-1 if timeout is None else timeout):
            self._redelivering.release()
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self.handlers.settle_deliveries(left)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or running. False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    @property
    def idle(self) -> bool:
        with self._cond:
            return self._pending == 0

    @property
    def backlog(self) -> int:
        """Events and tasks queued or running here."""
        with self._cond:
            return self._pending

    def wait_backlog(self, limit: int, timeout: float | None = None) -> bool:
        """Block until fewer than `limit` events and tasks are queued or running. False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending < limit, timeout)

    def unfinished(self, tasks: Iterable[Task]) -> bool:
        """Whether any of these tasks is still queued or running here."""
        with self._cond:
            return any(self._submitted[t.ident] or t.ident in self._inflight for t in tasks)

    # ---- dispatch -----------------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, _Stop):
                return
            try:
                if not self._closed.is_set():
                    tasks = route(item, self.store) if isinstance(item, ObjectEvent) else [item]
                    for task in tasks:
                        self._schedule(task)
            except Exception:  # noqa: BLE001 - a bad event must not stop the runtime; the sweeper covers it
                log.exception("route.failed", item=str(item)[:300])
            finally:
                if isinstance(item, Task):
                    with self._cond:
                        self._submitted[item.ident] -= 1
                        if not self._submitted[item.ident]:
                            del self._submitted[item.ident]
                self._done_one()

    def _schedule(self, task: Task) -> None:
        with self._cond:
            if task.ident in self._inflight:
                self._inflight[task.ident] = True
                return
            self._inflight[task.ident] = False
            self._pending += 1
        pool, priority = self._lane(task)
        try:
            pool.submit(task, priority)
        except RuntimeError:  # closed meanwhile: the task stays due in storage
            with self._cond:
                self._inflight.pop(task.ident, None)
            self._done_one()

    def _lane(self, task: Task) -> tuple[WorkerPool[Task], float]:
        if not task.is_phase:
            return (self._intake if task.step in INTAKE_STEPS else self._finish), 0.0
        return self._phases, -float(self._depth.get(task.step, 0))  # later phases first

    def _done_one(self) -> None:
        with self._cond:
            self._pending -= 1
            self._cond.notify_all()

    def _work(self, task: Task) -> None:
        settled = False
        with self._cond:
            self._running[task.ident] = task
        try:
            outcome = self._run_with_retries(task)
            if outcome is not None:
                self.outcomes.append(outcome)
                # a content-keyed run that is done stays done: asking again while it ran changes nothing.
                # Job and batch steps re-check, since their inputs (a replaced photo) may have changed.
                settled = task.is_phase and outcome.outcome in ("done", "skipped")
                if self._on_outcome is not None:
                    self._on_outcome(outcome)
        except Exception:  # noqa: BLE001 - keep the worker alive; log what happened
            log.exception("task.crashed", task=task.ident)
        finally:
            with self._cond:
                self._running.pop(task.ident, None)
                again = self._inflight.pop(task.ident, False)
            if again and not settled:
                self.submit(task)
            self._done_one()

    def _run_with_retries(self, task: Task) -> StepOutcome | None:
        """The task's outcome; None when the runtime stopped before an attempt (nothing was claimed)."""
        for attempt in range(1, self.max_attempts + 1):
            if self._closed.is_set():
                return None
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
                if self._closed.wait(delay):
                    return None
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
