"""Our own records in storage: strict, frozen, versioned. Storage is the source of truth; these are it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.cost import BatchCost, JobCost, Usage


def utcnow() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()


class FileEntry(Record):
    name: str
    key: str
    size: int
    sha256: str
    content_type: str = "application/octet-stream"


class RunManifest(Record):
    """work/{phase}/{run_key}/_manifest.json: written last; its presence means the run is done."""

    schema_version: Literal[1] = 1
    phase: str
    run_key: str
    phase_version: str
    needs: dict[str, str]
    files: tuple[FileEntry, ...]
    data: dict[str, Any] = Field(default_factory=dict)
    backends: dict[str, str] = Field(default_factory=dict)
    duration_s: float
    attempt: int
    worker: str
    finished_at: datetime
    usage: Usage | None = None  # wall, CPU and GPU seconds (None: written before usage was recorded)


class RunError(Record):
    """work/{phase}/{run_key}/_error.json: the run failed for good; every job that uses it fails."""

    schema_version: Literal[1] = 1
    phase: str
    run_key: str
    kind: Literal["invalid_input", "internal"]
    reason: str
    user_action: str
    attempts: int
    failed_at: datetime


class JobError(Record):
    """results/{job_id}/error.json."""

    schema_version: Literal[1] = 1
    status: Literal["failed"] = "failed"
    job_id: str
    batch_id: str | None = None
    plan_hash: str
    phase: str
    reason: str
    user_action: str
    failed_at: datetime


class PhaseSummary(Record):
    run_key: str
    duration_s: float
    attempt: int
    usage: Usage | None = None
    backends: dict[str, str] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)


class ResultManifest(Record):
    """results/{job_id}/manifest.json: written last; the job succeeded."""

    schema_version: Literal[1] = 1
    status: Literal["succeeded"] = "succeeded"
    job_id: str
    batch_id: str | None = None
    plan_hash: str
    inputs: dict[str, str]
    files: tuple[FileEntry, ...]
    phases: dict[str, PhaseSummary]
    published_at: datetime
    cost: JobCost | None = None  # this job's share of its runs' usage, priced (pipeline/cost.py)


class BatchJobEntry(Record):
    job_id: str
    person: str
    garment: str
    status: Literal["succeeded", "failed"]
    result: str | None = None
    error: str | None = None
    user_action: str | None = None
    phase: str | None = None


class BatchReport(Record):
    """results/batches/{batch_id}/report.json: written once every job of the batch is terminal."""

    schema_version: Literal[1] = 1
    batch_id: str
    plan_hash: str
    total: int
    succeeded: int
    failed: int
    jobs: tuple[BatchJobEntry, ...]
    finished_at: datetime
    error: str | None = None
    cost: BatchCost | None = None  # the succeeded jobs' costs summed
