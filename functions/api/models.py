"""The API's request and response bodies: our own contracts, strict and frozen (they appear in /openapi.json)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.cost import JobCost

JobState = Literal["waiting_for_inputs", "queued", "running", "succeeded", "failed"]
PhaseState = Literal["done", "failed", "running", "waiting", "pending", "unavailable"]


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Problem(Body):
    """Every refusal: what is wrong and what to do about it."""

    status: int
    error: str = Field(description="what is wrong, in words")
    user_action: str = Field(description="what to do about it")


class UploadTarget(Body):
    """Where one photo goes. On a folder bucket: a PUT to the API itself. On S3: a presigned PUT straight to the
    bucket (send exactly `headers`: the content type is signed), or the presigned POST form in `form`, whose
    policy S3 enforces (the size range and the content type)."""

    method: Literal["PUT"] = "PUT"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    max_bytes: int
    form: dict[str, Any] | None = Field(default=None, description="S3 only: {url, fields} of a presigned POST")
    expires_in_s: int | None = None


class PhaseView(Body):
    name: str
    state: PhaseState
    run_key: str
    duration_s: float | None = None
    finished_at: str | None = None


class ResultLink(Body):
    name: str
    url: str
    sha256: str
    size: int
    content_type: str


class JobView(Body):
    job_id: str
    state: JobState
    progress: float = Field(ge=0, le=1, description="the fraction of the job's phases done")
    waiting_on: list[str] = Field(default_factory=list, description="what the job waits for, in words")
    inputs: list[str] = Field(default_factory=list, description="the parts uploaded so far")
    phases: list[PhaseView] = Field(default_factory=list)
    results: list[ResultLink] = Field(default_factory=list, description="on success: every file of the result")
    manifest_url: str | None = None
    page_url: str | None = Field(default=None, description="on success: the result page, when published")
    cost: JobCost | None = Field(default=None, description="on success: the job's CPU/GPU seconds and US$ estimate")
    error: dict[str, Any] | None = Field(default=None, description="on failure: results/{job}/error.json")
    links: dict[str, str] = Field(default_factory=dict)


class JobCreated(Body):
    job_id: str
    uploads: dict[str, UploadTarget] = Field(description="person and garment: where to put each photo")
    job: JobView


class UploadDone(Body):
    key: str
    size: int
    format: str
    job: JobView | None = Field(default=None, description="a job's photo: the job's state after it")


class BatchRequest(Body):
    """POST /v1/batches: the photos' file names, and batch.json's settings (written at the commit)."""

    batch_id: str | None = None
    people: list[str] = Field(min_length=1, max_length=200)
    garments: list[str] = Field(min_length=1, max_length=200)
    settings: dict[str, Any] = Field(default_factory=dict, description="batch.json (spec, people, garments)")


BatchState = Literal["waiting_for_uploads", "committed", "running", "succeeded", "failed"]


class BatchView(Body):
    batch_id: str
    state: BatchState
    waiting_on: list[str] = Field(default_factory=list)
    jobs: dict[str, JobState] = Field(default_factory=dict, description="job id -> its state")
    report: dict[str, Any] | None = None
    links: dict[str, str] = Field(default_factory=dict)


class BatchCreated(Body):
    batch_id: str
    uploads: dict[str, UploadTarget] = Field(description="people/{name} and garments/{name}: one per photo")
    commit_url: str
    batch: BatchView
