"""The thin bodies of the Modal functions: the same handlers as the local runtime, against S3.

`modal_deploy.py` wraps these; they take and return small JSON-able values (ids, never bytes) and build
their clients from one Settings object at the edge. Dispatching is by a `Dispatcher` the caller gives
(Modal: `SpawnDispatcher` over the app's functions), so these bodies run offline in tests.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import structlog

from events.normalize import normalize
from events.router import pending_tasks
from events.tasks import Task
from functions.claims import Claims
from functions.dispatch import Dispatcher, dispatch_events
from functions.handlers import Handlers
from functions.sqs_worker import drain
from functions.steps import is_done
from infra import aws
from infra.notifications import build_notifier, redeliver_due
from infra.s3_store import S3Store
from infra.settings import Settings
from pipeline.backends.threads import limit_malloc_arenas, pin_native_threads, pin_torch_threads
from pipeline.backoff import backoff_s
from pipeline.page.viewer import find_viewer
from pipeline.phase_api import PhaseRegistry
from pipeline.phases import STEP_NAMES
from pipeline.registry import product_registry

log = structlog.get_logger("dropfit.cloud")


def s3_store(bucket: str, settings: Settings) -> S3Store:
    return S3Store.connect(bucket, endpoint_url=settings.s3_endpoint_url, region=settings.aws_region)


def s3_handlers(bucket: str, settings: Settings, registry: PhaseRegistry | None = None) -> Handlers:
    store = s3_store(bucket, settings)
    registry = registry or product_registry(settings.models())  # the deployment's profile: intake plans with it
    return Handlers(store, registry, build_notifier(store, settings), lease_s=settings.lease_s,
                    viewer=find_viewer(settings.models().cache), prices=settings.prices())


def phase_registry(settings: Settings, cache_dir: Path | None) -> PhaseRegistry:
    """The product's phases for a Modal container, with the backends `settings.profile` plans: the model cache
    (and the GPU weights under it, `<cache>/weights`) is the mounted volume; models load in warm_up()."""
    config = settings.models()
    return product_registry(config.model_copy(update={"cache_dir": cache_dir}) if cache_dir else config)


def execute_task(step: str, subject: str, bucket: str, settings: Settings | None = None,
                 registry: PhaseRegistry | None = None) -> dict[str, Any]:
    """Run one task once. Unexpected errors propagate, so the platform's retries re-run it (the task
    is idempotent: a re-run finds it done or takes over its claim)."""
    settings = settings or Settings()
    return run_on(s3_handlers(bucket, settings, registry), step, subject, max_attempts=settings.max_attempts,
                  retry_base_s=settings.retry_base_s)


def run_on(handlers: Handlers, step: str, subject: str, *, max_attempts: int = 3,
           retry_base_s: float = 0.5) -> dict[str, Any]:
    """Attempts in process, with backoff, as the local runtime does; after the last one the handlers give
    up (a phase run fails for good, so its jobs fail with a readable error instead of waiting forever).
    Modal's own retries are left for what this cannot catch: a crashed or preempted container."""
    task = Task(step=step, subject=subject)
    structlog.contextvars.bind_contextvars(step=step, subject=subject, bucket=handlers.store.bucket)
    try:
        for attempt in range(1, max_attempts + 1):
            try:
                outcome = handlers.execute(task, attempt)
                break
            except Exception as exc:  # noqa: BLE001 - retryable and unexpected errors retry alike
                if attempt == max_attempts:
                    outcome = handlers.give_up(task, exc, attempt)
                    break
                time.sleep(backoff_s(attempt, retry_base_s, 10.0))
        # the step is over and its claim released; its subscriber deliveries (a publish's, a fail's) finish
        # before the call returns, as a container may be frozen after it (what outlasts them is redelivered)
        handlers.settle_deliveries()
    finally:
        structlog.contextvars.unbind_contextvars("step", "subject", "bucket")
    return {"step": step, "subject": subject, "outcome": outcome.outcome, "detail": outcome.detail,
            "duration_s": round(outcome.duration_s, 4)}


class PhaseRunner:
    """What a phase's Modal class holds for its container's life: the registry (models loaded once, in
    `@modal.enter`) and one set of handlers per bucket."""

    def __init__(self, settings: Settings, registry: PhaseRegistry) -> None:
        pin_torch_threads()  # in `@modal.enter`, before the container runs anything on other threads
        limit_malloc_arenas()
        pin_native_threads()
        self._settings = settings
        self._registry = registry
        self._handlers: dict[str, Handlers] = {}

    def warm_up(self, phase: str | None = None) -> None:
        """Load the models of one phase (its container's), or of every phase."""
        self._registry.warm_up(phase)

    def run(self, phase: str, run_key: str, bucket: str) -> dict[str, Any]:
        if bucket not in self._handlers:
            self._handlers[bucket] = s3_handlers(bucket, self._settings, self._registry)
        return run_on(self._handlers[bucket], phase, run_key, max_attempts=self._settings.max_attempts,
                      retry_base_s=self._settings.retry_base_s)


def required(value: str | None, name: str) -> str:
    if not value:
        raise RuntimeError(f"set {name} in the Modal secret (docs/cloud.md)")
    return value


def poll_queue(settings: Settings, dispatcher: Dispatcher, *, seconds: float, wait_s: int = 20) -> dict[str, Any]:
    """The scheduled poller: long-poll the event queue for `seconds`, dispatch, delete what was dispatched."""
    sqs = aws.client("sqs", endpoint_url=settings.s3_endpoint_url, region=settings.aws_region)
    queue_url = required(settings.queue_url, "DROPFIT_QUEUE_URL")
    stats = drain(sqs, queue_url, dispatcher, wait_s=wait_s, idle_polls=10**9, visibility_s=60, deadline_s=seconds)
    return {"received": stats.received, "deleted": stats.deleted, "kept": stats.kept, "tasks": stats.tasks}


def route_payload(payload: str, dispatcher: Dispatcher) -> dict[str, Any]:
    """The EventBridge endpoint's hand-off: normalize, route against storage, dispatch."""
    tasks = dispatch_events(normalize(payload), dispatcher)
    return {"tasks": [t.ident for t in tasks]}


def sweep_bucket(settings: Settings, dispatcher: Dispatcher) -> dict[str, Any]:
    """The scheduled sweeper: everything storage says is due (lost events, dead workers), and the
    subscriber deliveries whose retry time has come."""
    tasks = pending_tasks(dispatcher.store)
    for task in tasks:
        dispatcher.submit(task)
    redelivered = redeliver_due(dispatcher.store, settings)
    cleared = Claims(dispatcher.store, "sweeper", settings.lease_s).clear_leftovers(
        sorted(STEP_NAMES), lambda task: is_done(dispatcher.store, task))
    log.info("sweep.done", tasks=len(tasks), redelivered=redelivered, claims_cleared=len(cleared))
    return {"tasks": [t.ident for t in tasks], "redelivered": redelivered}
