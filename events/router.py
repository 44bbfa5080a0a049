"""The router: given an object event and what exists in storage, the tasks that are now ready.

Events are hints, storage is the truth: the router re-reads state, so a duplicated, late or reordered
event yields either nothing or a task whose handler finds it already done. `pending_tasks` is the same
logic applied to everything in storage: the sweeper's view.
"""

from __future__ import annotations

from events.contracts import ObjectEvent
from events.tasks import Task
from pipeline import layout
from pipeline.intake import batch_due, intake_due
from pipeline.phases import NOT_PHASE_NAMES
from pipeline.plan import JobPlan
from pipeline.state import (
    batch_ids,
    incoming_job_ids,
    job_status,
    job_told,
    load_batch_plan,
    load_plan,
    planned_job_ids,
    report_current,
    run_status,
)
from pipeline.storage import ObjectStore

RUN_DONE_MARKERS = ("_manifest.json", "_error.json")
RESULT_MARKERS = ("manifest.json", "error.json")


def route(event: ObjectEvent, store: ObjectStore) -> list[Task]:
    key = event.key
    if (incoming := layout.parse_incoming(key)) is not None:
        return _intake_tasks(store, incoming.job_id)
    if (catalog := layout.parse_catalog(key)) is not None:
        return [Task(step="batch", subject=catalog.batch_id)] if catalog.part == "marker" else []
    if (work := layout.parse_work(key)) is not None:
        if work.phase == "jobs" and work.name == "plan.json":
            plan = load_plan(store, work.run_key)
            return next_tasks(plan, store) if plan else []
        if work.phase not in NOT_PHASE_NAMES and work.name in RUN_DONE_MARKERS:
            return _tasks_of_run_users(store, work.phase, work.run_key)
        return []
    if (result := layout.parse_result(key)) is not None and result.name in RESULT_MARKERS:
        plan = load_plan(store, result.job_id)
        return batch_tasks(plan.batch_id, store) if plan and plan.batch_id else []
    return []


def _intake_tasks(store: ObjectStore, job_id: str) -> list[Task]:
    return [Task(step="intake", subject=job_id)] if intake_due(store, job_id) else []


def _tasks_of_run_users(store: ObjectStore, phase_name: str, run_key: str) -> list[Task]:
    """A run ended: wake the jobs that use it, for what this run can have unblocked (the phases that
    need it, publish, fail). Other pending phases were started by their own events, or by the sweeper."""
    tasks: list[Task] = []
    prefix = layout.run_jobs_prefix(phase_name, run_key)
    for info in store.list(prefix):
        plan = load_plan(store, info.key[len(prefix) :])
        if plan and phase_name in plan.runs and plan.runs[phase_name].key == run_key:
            unblocked = {n for n in plan.runs if phase_name in plan.phase_needs(n)} | {"publish", "fail"}
            tasks += [t for t in next_tasks(plan, store) if t.step in unblocked and t not in tasks]
    return tasks


def next_tasks(plan: JobPlan, store: ObjectStore) -> list[Task]:
    """What a job needs next: phase runs whose needs are done, then publish, or fail on any error; and a
    job whose outcome is on record but was never told (a worker died in between) is published again. The plan
    says which runs the job has and what each needs, so the router needs no phase table."""
    status_now = job_status(store, plan)
    if status_now != "running":
        told = job_told(store, plan, status_now)
        return [] if told else [Task(step="publish" if status_now == "succeeded" else "fail", subject=plan.job_id)]
    if plan.error is not None:
        return [Task(step="fail", subject=plan.job_id)]
    status = {name: run_status(store, name, run.key) for name, run in plan.runs.items()}
    if "failed" in status.values():
        return [Task(step="fail", subject=plan.job_id)]
    if all(s == "done" for s in status.values()):
        return [Task(step="publish", subject=plan.job_id)]
    return [
        Task(step=name, subject=run.key)
        for name, run in plan.runs.items()
        if status[name] == "pending" and all(status[n] == "done" for n in plan.phase_needs(name))
    ]


def batch_tasks(batch_id: str, store: ObjectStore) -> list[Task]:
    """The batch report, once every job of the batch is terminal and the report is not yet current."""
    batch = load_batch_plan(store, batch_id)
    if batch is None:
        return []
    if report_current(store, batch):
        return []
    for pair in batch.jobs:
        plan = load_plan(store, pair.job_id)
        if plan is None or job_status(store, plan) == "running":
            return []
    return [Task(step="report", subject=batch_id)]


def pending_tasks(store: ObjectStore) -> list[Task]:
    """Every task storage says is due: intakes not yet planned, jobs not terminal, batches unreported."""
    tasks: list[Task] = []
    for job_id in incoming_job_ids(store):
        tasks += _intake_tasks(store, job_id)
    for batch_id in batch_ids(store):
        if batch_due(store, batch_id):
            tasks.append(Task(step="batch", subject=batch_id))
        else:
            tasks += batch_tasks(batch_id, store)
    for job_id in planned_job_ids(store):
        plan = load_plan(store, job_id)
        if plan is not None:
            tasks += [t for t in next_tasks(plan, store) if t not in tasks]
    return tasks
