"""Our own outbound events (CloudEvents 1.0, structured mode) and the notifier protocol.

Thin payloads: storage references to the results and links to them (presigned for S3), never bytes. The
event id is deterministic from the job, its plan and its outcome, so a re-delivery carries the same id
(subscribers dedupe on it). Delivery to subscribers (signed webhooks, SNS, SQS, EventBridge) is
`infra/subscribers.py`; this module stays pure.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import structlog
from pydantic import BaseModel, ConfigDict, Field

from pipeline import layout
from pipeline.manifests import utcnow
from pipeline.storage import ObjectStore

log = structlog.get_logger("dropfit.notify")

JobEventType = Literal["dropfit.job.succeeded", "dropfit.job.failed", "dropfit.batch.failed"]
BATCH_SUBJECT_PREFIX = "batches/"  # a batch's events are about "batches/{batch_id}": results/batches/{batch_id}/


class JobEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str = "dropfit"
    type: JobEventType
    subject: str
    time: datetime = Field(default_factory=utcnow)
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()


def job_event(
    bucket: str, job_id: str, plan_hash: str, succeeded: bool, detail: dict[str, Any]
) -> JobEvent:
    status = "succeeded" if succeeded else "failed"
    record = layout.result_manifest_key(job_id) if succeeded else layout.result_error_key(job_id)
    return JobEvent(
        id=layout.job_event_id(job_id, plan_hash, status),
        type=f"dropfit.job.{status}",  # type: ignore[arg-type]
        subject=job_id,
        data={"job_id": job_id, "status": status, "bucket": bucket, "results": layout.result_prefix(job_id),
              "record": record, **detail},
    )


def batch_event(bucket: str, batch_id: str, plan_hash: str, reason: str, user_action: str) -> JobEvent:
    """A batch refused as a whole (batch.json unusable, no photos): no job exists to fail, so the batch's
    own terminal event, told like a failed job's, links its report."""
    subject = BATCH_SUBJECT_PREFIX + batch_id
    report = layout.batch_report_key(batch_id)
    return JobEvent(
        id=layout.job_event_id(subject, plan_hash, "failed"),
        type="dropfit.batch.failed",
        subject=subject,
        data={"batch_id": batch_id, "status": "failed", "bucket": bucket, "results": layout.result_prefix(subject),
              "record": report, "report": report, "reason": reason, "user_action": user_action},
    )


def with_links(event: JobEvent, link: Callable[[str], str], expires_s: int) -> JobEvent:
    """The event with `data.links`: the manifest, the GLB and the angle images of a success (or the error
    record of a failure), as URLs from `link(key)` (presigned GETs on S3) valid for `expires_s`."""
    data = event.data
    links: dict[str, Any]
    if event.type == "dropfit.job.succeeded":
        files = [str(k) for k in data.get("files", [])]
        glb = next((k for k in files if k.endswith(".glb")), None)
        links = {"manifest": link(str(data["manifest"])), "glb": link(glb) if glb else None,
                 "angles": [link(k) for k in sorted(files) if "/angles/" in k]}
    else:
        links = {"error": link(str(data["record"]))}
    links["expires_at"] = (utcnow() + timedelta(seconds=expires_s)).isoformat()
    return event.model_copy(update={"data": {**data, "links": links}})


class Notifier(Protocol):
    def notify(self, event: JobEvent) -> None: ...


class StoreEventLog:
    """The local default subscriber: a log line, and the event written next to the results."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def notify(self, event: JobEvent) -> None:
        key = layout.result_event_key(event.subject, event.type.rsplit(".", 1)[1])
        self._store.put(key, event.to_bytes(), content_type="application/cloudevents+json")
        log.info("job.notified", job=event.subject, type=event.type, event_id=event.id, record=key)

