"""Wiring for the local default: a folder bucket, the product's phases, the notifier (the event next to the
results, and every subscriber of settings and job.json), the runtime."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from events.outbound import Notifier
from events.tasks import Task
from functions.handlers import Handlers, StepOutcome
from functions.runtime import LocalRuntime
from infra.folder_store import FolderStore
from infra.notifications import build_notifier
from infra.settings import Settings
from pipeline.page.viewer import find_viewer
from pipeline.phase_api import PhaseRegistry
from pipeline.registry import product_registry


@dataclass
class LocalApp:
    store: FolderStore
    runtime: LocalRuntime
    registry: PhaseRegistry


def build_local(bucket: Path | str, settings: Settings | None = None, *, registry: PhaseRegistry | None = None,
                notifier: Notifier | None = None, on_outcome: Callable[[StepOutcome], None] | None = None,
                on_start: Callable[[Task], None] | None = None) -> LocalApp:
    settings = settings or Settings()
    store = FolderStore(bucket)
    registry = registry or product_registry(settings.models())
    handlers = Handlers(store, registry, notifier or build_notifier(store, settings), lease_s=settings.lease_s,
                        viewer=find_viewer(settings.models().cache), prices=settings.prices())
    runtime = LocalRuntime(handlers, workers=settings.workers, max_attempts=settings.max_attempts,
                           retry_base_s=settings.retry_base_s, on_outcome=on_outcome, on_start=on_start,
                           preload=settings.preload)
    store.subscribe(runtime.submit_event)
    return LocalApp(store, runtime, registry)
