"""`dropfit status`: what storage says about jobs and their phase runs, as readable tables."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.table import Table

from functions.claims import ClaimRecord
from pipeline import layout
from pipeline.intake import incoming_files, is_ready
from pipeline.phase_api import PhaseRegistry
from pipeline.plan import JobPlan
from pipeline.state import (
    incoming_job_ids,
    job_error,
    job_status,
    load_plan,
    planned_job_ids,
    read_model,
    run_manifest,
    run_status,
)
from pipeline.storage import ObjectStore


def job_summary(store: ObjectStore, registry: PhaseRegistry, plan: JobPlan, phases: list[str]) -> str:
    """The job's state in words: terminal states as they are; a running job says what it waits on."""
    state = job_status(store, plan)
    if state != "running":
        return state
    if "running" in phases:
        return "running"
    if "unavailable" in phases:
        return "waiting: phase not in this build"
    return "queued"


def phase_state(store: ObjectStore, registry: PhaseRegistry, plan: JobPlan, phase_name: str) -> str:
    run = plan.run(phase_name)
    status = run_status(store, phase_name, run.key)
    if status != "pending":
        return status
    claim = read_model(store, layout.claim_key(phase_name, run.key), ClaimRecord)
    if claim is not None and claim.expires_at > datetime.now(UTC):
        return "running"
    needs_done = all(run_status(store, n, plan.run(n).key) == "done" for n in plan.phase_needs(phase_name))
    if not needs_done:
        return "waiting"
    return "pending" if registry.available(phase_name) else "unavailable"


def jobs_table(store: ObjectStore, registry: PhaseRegistry) -> Table:
    phases = registry.table.names
    table = Table(title=f"jobs in {store.bucket}")
    table.add_column("job")
    table.add_column("state")
    for name in phases:
        table.add_column(name)
    for job_id in sorted(set(incoming_job_ids(store)) | set(planned_job_ids(store))):
        plan = load_plan(store, job_id)
        if plan is None:
            waiting = "waiting for inputs" if not is_ready(incoming_files(store, job_id)) else "queued"
            table.add_row(job_id, waiting, *["" for _ in phases])
        elif plan.error is not None:
            table.add_row(job_id, f"failed (intake: {plan.error.reason[:60]})", *["" for _ in phases])
        else:
            states = [phase_state(store, registry, plan, name) if name in plan.runs else "" for name in phases]
            table.add_row(job_id, job_summary(store, registry, plan, states), *states)
    return table


def job_detail(store: ObjectStore, registry: PhaseRegistry, job_id: str) -> Table:
    plan = load_plan(store, job_id)
    table = Table(title=f"job {job_id}")
    for column in ("phase", "state", "run key", "took", "note"):
        table.add_column(column)
    if plan is None:
        files = incoming_files(store, job_id)
        table.add_row("intake", "waiting" if not is_ready(files) else "queued", "", "",
                      "has: " + (", ".join(sorted(files)) or "nothing"))
        return table
    table.add_row("intake", "refused" if plan.error else "planned", plan.plan_hash, "",
                  plan.error.reason if plan.error else "")
    for name, run in plan.runs.items():
        manifest = run_manifest(store, name, run.key)
        note = "not in this build" if not registry.available(name) else ""
        took = f"{manifest.duration_s:.2f} s" if manifest else ""
        table.add_row(name, phase_state(store, registry, plan, name), run.key, took, note)
    state = job_status(store, plan)
    error = job_error(store, job_id)
    table.add_row("result", state, "", "", error.reason if error and state == "failed" else
                  (layout.result_prefix(job_id) if state == "succeeded" else ""))
    return table
