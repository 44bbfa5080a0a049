"""Idempotency-Key on POST /v1/jobs and /v1/batches: the first request with a key records its body's digest
and its job (or batch) under work/api/idempotency/ (a conditional create, so two racing requests make one);
the same key with the same body again answers with that one, with another body 409."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from functions.api.errors import ApiError
from pipeline import layout
from pipeline.manifests import Record, utcnow
from pipeline.state import read_model
from pipeline.storage import ObjectStore, PreconditionFailed


class KeyRecord(Record):
    schema_version: Literal[1] = 1
    request_sha256: str
    job_id: str  # or a batch's id, for a batch's key
    created_at: datetime


def remember(store: ObjectStore, key: str, digest: str, job_id: str) -> tuple[str, bool]:
    """(the job to answer with, whether this is a replay of an earlier request)."""
    record = KeyRecord(request_sha256=digest, job_id=job_id, created_at=utcnow())
    where = layout.api_idempotency_key(key)
    try:
        store.put(where, record.to_bytes(), if_none_match=True, content_type="application/json")
        return job_id, False
    except PreconditionFailed:
        pass
    earlier = read_model(store, where, KeyRecord)
    if earlier is None:
        raise ApiError(409, "a request with this Idempotency-Key is being handled right now",
                       "retry in a moment with the same key")
    if earlier.request_sha256 != digest:
        raise ApiError(409, f"this Idempotency-Key was used for another request ({earlier.job_id!r})",
                       "use a new Idempotency-Key for a new job, or send exactly the earlier request again")
    return earlier.job_id, True


def forget(store: ObjectStore, key: str) -> None:
    """Drop a key whose request was refused, so the client may retry it corrected."""
    store.delete(layout.api_idempotency_key(key))
