"""The thin body of the Modal functions: the same handlers as the local runtime, against S3.

`modal_deploy.py` wraps these; they take and return small JSON-able values (ids, never bytes) and
build their clients from one Settings object at the edge.
"""

from __future__ import annotations

from typing import Any

import structlog

from events.outbound import StoreEventLog
from events.tasks import Task
from functions.handlers import Handlers
from infra.s3_store import S3Store
from infra.settings import Settings
from pipeline.phase_api import PhaseRegistry
from pipeline.registry import product_registry


def s3_handlers(bucket: str, settings: Settings, registry: PhaseRegistry | None = None) -> Handlers:
    store = S3Store.connect(bucket, endpoint_url=settings.s3_endpoint_url, region=settings.aws_region)
    return Handlers(store, registry or product_registry(), StoreEventLog(store), lease_s=settings.lease_s)


def execute_task(step: str, subject: str, bucket: str, settings: Settings | None = None,
                 registry: PhaseRegistry | None = None) -> dict[str, Any]:
    """Run one task once. Unexpected errors propagate, so the platform's retries re-run it (the task
    is idempotent: a re-run finds it done or takes over its claim)."""
    settings = settings or Settings()
    structlog.contextvars.bind_contextvars(step=step, subject=subject, bucket=bucket)
    try:
        outcome = s3_handlers(bucket, settings, registry).execute(Task(step=step, subject=subject))
    finally:
        structlog.contextvars.unbind_contextvars("step", "subject", "bucket")
    return {"step": step, "subject": subject, "outcome": outcome.outcome, "detail": outcome.detail,
            "duration_s": round(outcome.duration_s, 4)}
