"""Reading what storage says about jobs, runs and batches. Storage is the truth; events are hints."""

from __future__ import annotations

import json
from typing import Literal, TypeVar

from pydantic import BaseModel, ValidationError

from pipeline import layout
from pipeline.manifests import BatchReport, JobError, ResultManifest, RunError, RunManifest
from pipeline.plan import BatchPlan, JobPlan
from pipeline.storage import ObjectNotFound, ObjectStore

M = TypeVar("M", bound=BaseModel)
RunStatus = Literal["done", "failed", "pending"]
JobStatus = Literal["succeeded", "failed", "running"]


def read_model(store: ObjectStore, key: str, model: type[M]) -> M | None:
    """The record at `key`, or None when it is absent or not (yet) a valid record of that type."""
    try:
        return model.model_validate_json(store.get(key))
    except ObjectNotFound:
        return None
    except ValidationError:
        return None


def load_plan(store: ObjectStore, job_id: str) -> JobPlan | None:
    return read_model(store, layout.plan_key(job_id), JobPlan)


def load_batch_plan(store: ObjectStore, batch_id: str) -> BatchPlan | None:
    return read_model(store, layout.batch_plan_key(batch_id), BatchPlan)


def run_manifest(store: ObjectStore, phase: str, run_key: str) -> RunManifest | None:
    return read_model(store, layout.run_manifest_key(phase, run_key), RunManifest)


def run_error(store: ObjectStore, phase: str, run_key: str) -> RunError | None:
    return read_model(store, layout.run_error_key(phase, run_key), RunError)


def run_status(store: ObjectStore, phase: str, run_key: str) -> RunStatus:
    if store.head(layout.run_manifest_key(phase, run_key)) is not None:
        return "done"
    if store.head(layout.run_error_key(phase, run_key)) is not None:
        return "failed"
    return "pending"


def result_manifest(store: ObjectStore, job_id: str) -> ResultManifest | None:
    return read_model(store, layout.result_manifest_key(job_id), ResultManifest)


def job_error(store: ObjectStore, job_id: str) -> JobError | None:
    return read_model(store, layout.result_error_key(job_id), JobError)


def job_status(store: ObjectStore, plan: JobPlan) -> JobStatus:
    """Terminal only when the results on record belong to the job's current plan."""
    manifest = result_manifest(store, plan.job_id)
    if manifest is not None and manifest.plan_hash == plan.plan_hash:
        return "succeeded"
    error = job_error(store, plan.job_id)
    if error is not None and error.plan_hash == plan.plan_hash:
        return "failed"
    return "running"


def job_told(store: ObjectStore, plan: JobPlan, status: JobStatus) -> bool:
    """Whether the outcome of the job's current plan is on record as told to its subscribers: the event
    next to the results, written after every subscriber's delivery was durably opened."""
    try:
        event = json.loads(store.get(layout.result_event_key(plan.job_id, status)))
    except (ObjectNotFound, ValueError):
        return False
    return isinstance(event, dict) and event.get("id") == layout.job_event_id(plan.job_id, plan.plan_hash, status)


def job_settled(store: ObjectStore, plan: JobPlan) -> bool:
    """Terminal, and its subscribers told: nothing is left to do for the job's current plan."""
    status = job_status(store, plan)
    return status != "running" and job_told(store, plan, status)


def batch_report(store: ObjectStore, batch_id: str) -> BatchReport | None:
    return read_model(store, layout.batch_report_key(batch_id), BatchReport)


def report_current(store: ObjectStore, batch: BatchPlan) -> bool:
    report = batch_report(store, batch.batch_id)
    return report is not None and report.plan_hash == batch.plan_hash


def incoming_job_ids(store: ObjectStore) -> list[str]:
    ids = {p.job_id for info in store.list(layout.INCOMING) if (p := layout.parse_incoming(info.key))}
    return sorted(ids)


def planned_job_ids(store: ObjectStore) -> list[str]:
    prefix = f"{layout.WORK}jobs/"
    return sorted({info.key[len(prefix) :].split("/", 1)[0] for info in store.list(prefix)})


def batch_ids(store: ObjectStore) -> list[str]:
    ids = {
        p.batch_id
        for info in store.list(layout.CATALOG)
        if (p := layout.parse_catalog(info.key)) and p.part == "marker"
    }
    return sorted(ids)
