"""One handler for every task: skip if done -> claim -> run the step -> release. The same on a laptop
and on Modal. Emits one structured log line per step run (step, subject, jobs, attempt, duration)."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import structlog

from events.outbound import Notifier
from events.tasks import Task
from functions import steps
from functions.claims import Claims, Lease
from pipeline import layout
from pipeline.backends.config import default_cache_dir
from pipeline.cost import Prices
from pipeline.errors import LeaseLost, PhaseUnavailable
from pipeline.page.viewer import ViewerScript, find_viewer
from pipeline.phase_api import PhaseRegistry
from pipeline.phases import STEP_NAMES
from pipeline.storage import ObjectStore

log = structlog.get_logger("dropfit.step")

Outcome = Literal["done", "skipped", "busy", "unavailable", "lost", "failed"]


@dataclass(frozen=True)
class StepOutcome:
    task: Task
    outcome: Outcome
    detail: str
    attempt: int
    duration_s: float


@runtime_checkable
class Deliveries(Protocol):
    """A notifier whose deliveries go on in the background, from an outbox it can redeliver (the product's
    `infra.subscribers.FanOutNotifier`); a plain notifier (the event log alone) has none."""

    def settle(self, timeout: float | None = None) -> int:
        """Wait for the deliveries in progress, at most `timeout` s; returns how many are still going."""
        ...

    def redeliver_due(self) -> int:
        """Start the pending deliveries whose retry time has come; returns how many."""
        ...


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Handlers:
    def __init__(self, store: ObjectStore, registry: PhaseRegistry, notifier: Notifier, *, lease_s: float = 60.0,
                 worker: str | None = None, clock: Callable[[], float] = time.time,
                 viewer: ViewerScript | None = None, prices: Prices | None = None) -> None:
        self.store = store
        self._viewer = viewer  # the result page's 3D viewer script; None: looked up in the default cache once
        self.prices = prices or Prices()
        self.registry = registry
        self.notifier = notifier
        self.worker = worker or worker_id()
        self.claims = Claims(store, self.worker, lease_s, clock)
        self._leases: dict[str, tuple[Task, Lease]] = {}  # the claims held now, by task
        self._leases_lock = threading.Lock()

    def execute(self, task: Task, attempt: int = 1) -> StepOutcome:
        """Run the task once if it is not done and nobody else holds it. Unexpected errors propagate
        (the caller retries); expected endings come back as an outcome."""
        started = time.perf_counter()
        outcome, detail = self._execute(task, attempt)
        result = StepOutcome(task, outcome, detail, attempt, time.perf_counter() - started)
        self._log(result)
        return result

    def _execute(self, task: Task, attempt: int) -> tuple[Outcome, str]:
        if steps.is_done(self.store, task):
            return "skipped", "already done"
        held = self.claims.acquire(task)
        if held is None:
            return "busy", "another worker holds the claim"
        try:
            with Lease(self.claims, held) as lease:
                with self._leases_lock:
                    self._leases[task.ident] = (task, lease)
                try:
                    if steps.is_done(self.store, task):
                        return "skipped", "done by another worker"
                    return "done", self._run(task, lease, attempt)
                finally:
                    with self._leases_lock:
                        self._leases.pop(task.ident, None)
        except PhaseUnavailable as exc:
            return "unavailable", exc.reason
        except LeaseLost as exc:
            return "lost", str(exc)

    def release_claims(self, reason: str) -> list[Task]:
        """Give up every claim held now (a stopping worker's, for steps that cannot be interrupted): another
        worker may take them at once, and a phase still running here does not commit. Returns their tasks."""
        with self._leases_lock:
            held = list(self._leases.values())
        for _, lease in held:
            lease.abandon(reason)
        return [task for task, _ in held]

    def clear_leftover_claims(self) -> list[str]:
        """The expired claims of done orchestration steps (left by a worker killed between a step's effect and
        its release) are deleted: the sweeper's housekeeping."""
        return self.claims.clear_leftovers(sorted(STEP_NAMES), lambda task: steps.is_done(self.store, task))

    def settle_deliveries(self, timeout: float | None = None) -> int:
        """Wait up to `timeout` s for the notifier's deliveries in progress; how many are still going."""
        return self.notifier.settle(timeout) if isinstance(self.notifier, Deliveries) else 0

    def redeliver_due(self) -> int:
        """Start the subscriber deliveries whose retry time has come (none for a notifier without an outbox)."""
        return self.notifier.redeliver_due() if isinstance(self.notifier, Deliveries) else 0

    @property
    def viewer(self) -> ViewerScript:
        if self._viewer is None:
            self._viewer = find_viewer(default_cache_dir())
        return self._viewer

    def _run(self, task: Task, lease: Lease, attempt: int) -> str:
        if task.is_phase:
            return steps.run_phase(self.store, self.registry, task, lease, attempt, self.worker)
        if task.step == "intake":
            return steps.run_intake(self.store, task.subject, self.registry)
        if task.step == "batch":
            return steps.run_batch(self.store, task.subject, self.registry, self.notifier)
        if task.step == "publish":
            return steps.run_publish(self.store, task.subject, self.notifier, self.registry.table, self.viewer,
                                     self.prices)
        if task.step == "fail":
            return steps.run_fail(self.store, task.subject, self.notifier)
        if task.step == "report":
            return steps.run_report(self.store, task.subject, self.prices)
        raise ValueError(f"unknown step {task.step!r}")

    def give_up(self, task: Task, error: BaseException, attempts: int) -> StepOutcome:
        """After the last retry: a phase run fails for good (its jobs fail with a readable error), and so does
        an intake or a batch's planning (a refused plan: the job or batch ends with error.json or its report,
        never retried by every sweep); the other orchestration steps are left for the sweeper, since storage
        still says they are due."""
        detail = f"{type(error).__name__}: {error}"
        if task.is_phase and not steps.is_done(self.store, task):
            steps.write_run_error(
                self.store, task, "internal", f"the {task.step} phase failed {attempts} times ({detail})",
                "try again later; if it keeps failing, report the job id to the operator", attempts)
        elif task.step in ("intake", "batch") and not steps.is_done(self.store, task):
            steps.refuse_after_failures(self.store, task, detail[:500], attempts, self.notifier)
        result = StepOutcome(task, "failed", detail, attempts, 0.0)
        self._log(result)
        return result

    def jobs_of(self, task: Task) -> list[str]:
        if not task.is_phase:
            return [task.subject] if task.step not in ("batch", "report") else []
        prefix = layout.run_jobs_prefix(task.step, task.subject)
        return [info.key[len(prefix):] for info in self.store.list(prefix)]

    def _log(self, result: StepOutcome) -> None:
        """The one line per step run: job, phase (or step), attempt, duration, outcome."""
        task = result.task
        fields: dict[str, object] = {"phase": task.step} if task.is_phase else {"step": task.step}
        if task.is_phase:
            fields["run_key"] = task.subject
        if task.step in ("batch", "report"):
            fields["batch"] = task.subject
        else:
            jobs = self.jobs_of(task)
            fields["job"] = ",".join(jobs[:5]) + (f",+{len(jobs) - 5}" if len(jobs) > 5 else "")
        fields.update(attempt=result.attempt, duration_ms=round(result.duration_s * 1000, 1),
                      outcome=result.outcome, detail=result.detail)
        level = "warning" if result.outcome in ("failed", "lost") else "info"
        getattr(log, level)("step.run", **fields)
