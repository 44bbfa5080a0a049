"""The steps behind tasks: intake, batch, a phase run, publish, fail, report.

Each is idempotent: `is_done` says whether storage already holds its effect, and `run` rewrites the
same deterministic keys if it runs twice. Markers are written last: `_manifest.json` after a run's
files, a plan after its runs' `_task.json`/`_jobs` entries, `manifest.json` after the results.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from events.outbound import Notifier, batch_event, job_event
from events.tasks import Task
from functions.claims import Lease
from pipeline import layout
from pipeline.cost import JobCost, Prices, Usage, batch_cost, job_cost
from pipeline.errors import InvalidInput, PhaseUnavailable
from pipeline.intake import batch_due, intake_due, plan_batch, plan_incoming_job, refused_incoming_plan
from pipeline.manifests import (
    BatchJobEntry,
    BatchReport,
    FileEntry,
    JobError,
    PhaseSummary,
    ResultManifest,
    RunError,
    RunManifest,
    utcnow,
)
from pipeline.page.publish import write_batch_page, write_result_page
from pipeline.page.viewer import ViewerScript
from pipeline.phase_api import PhaseIO, PhaseRegistry, PhaseTask
from pipeline.phases import PhaseTable
from pipeline.plan import BatchPlan, JobPlan, refused_batch_plan
from pipeline.state import (
    job_error,
    job_settled,
    job_status,
    load_batch_plan,
    load_plan,
    read_model,
    report_current,
    result_manifest,
    run_error,
    run_manifest,
    run_status,
)
from pipeline.storage import ObjectStore

T = TypeVar("T")


def is_done(store: ObjectStore, task: Task) -> bool:
    if task.is_phase:
        return run_status(store, task.step, task.subject) != "pending"
    if task.step == "intake":
        return not intake_due(store, task.subject)
    if task.step in ("publish", "fail"):
        plan = load_plan(store, task.subject)
        return plan is None or job_settled(store, plan)
    if task.step == "batch":
        return not batch_due(store, task.subject)
    if task.step == "report":
        batch = load_batch_plan(store, task.subject)
        return batch is None or report_current(store, batch)
    raise ValueError(f"unknown step {task.step!r}")


# ---- intake ----------------------------------------------------------------------------------------


def in_parallel(fn: Callable[[T], object], items: Iterable[T], workers: int = 8) -> None:
    """Independent storage writes at once (on S3 each is a round trip); the first error propagates."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dropfit-io") as pool:
        list(pool.map(fn, items))


def write_plan(store: ObjectStore, plan: JobPlan) -> None:
    """Register the job with each run it uses, then write the plan (whose event starts the runs)."""

    def register(name: str) -> None:
        run = plan.run(name)
        store.put(layout.run_job_key(name, run.key, plan.job_id), plan.plan_hash.encode())
        task_key = layout.run_prefix(name, run.key) + "_task.json"
        if store.head(task_key) is None:
            store.put(task_key, PhaseTask.from_plan(plan, name).model_dump_json(indent=2).encode())

    in_parallel(register, plan.runs)
    current = load_plan(store, plan.job_id)
    if current is None or current != plan:
        store.put(layout.plan_key(plan.job_id), plan.to_bytes(), content_type="application/json")


def run_intake(store: ObjectStore, job_id: str, registry: PhaseRegistry) -> str:
    plan = plan_incoming_job(store, job_id, registry.job_backends, registry.table)
    if plan is None:
        return "not ready"
    write_plan(store, plan)
    return "refused" if plan.error else "planned"


def run_batch(store: ObjectStore, batch_id: str, registry: PhaseRegistry, notifier: Notifier | None = None) -> str:
    marker = store.head(layout.batch_marker_key(batch_id))
    try:
        planned = plan_batch(store, batch_id, registry.job_backends, registry.table)
    except InvalidInput as exc:
        return refuse_batch(store, batch_id, marker.etag if marker else "", f"{exc.reason}. {exc.user_action}",
                            notifier)
    if planned is None:
        return "no marker"
    batch, _, plans = planned
    for plan in plans:
        write_plan(store, plan)
    store.put(layout.batch_plan_key(batch_id), batch.to_bytes(), content_type="application/json")
    return f"{len(plans)} jobs"


def refuse_batch(store: ObjectStore, batch_id: str, marker_etag: str, error: str,
                 notifier: Notifier | None = None) -> str:
    """A batch with no jobs and its report saying why (batch.json unusable, or intake could not finish), told
    to subscribers like a failed job (`dropfit.batch.failed`). The plan, which marks the step done, is written
    last: a worker that dies before it refuses the batch again, and the outbox tells no one twice."""
    batch = refused_batch_plan(batch_id, marker_etag, error)
    _write_report(store, batch)
    if notifier is not None:
        notifier.notify(batch_event(store.bucket, batch_id, batch.plan_hash, error,
                                    BATCH_REFUSED_ACTION.format(batch=batch_id)))
    store.put(layout.batch_plan_key(batch_id), batch.to_bytes(), content_type="application/json")
    return "refused"


BATCH_REFUSED_ACTION = "fix what the batch's report says, then upload catalog/{batch}/batch.json again"


INTAKE_FAILED_ACTION = "upload the files again; if it keeps failing, report the {what} id to the operator"


def refuse_after_failures(store: ObjectStore, task: Task, detail: str, attempts: int,
                          notifier: Notifier | None = None) -> str:
    """Intake or batch planning raised something unexpected on every attempt: the job (or batch) ends refused,
    with a readable error and its subscribers told, instead of every sweep retrying it forever. Re-uploading
    the files plans it again (the refusal is keyed to the files' etags)."""
    reason = f"intake could not check these files: it failed {attempts} times ({detail})"
    if task.step == "batch":
        marker = store.head(layout.batch_marker_key(task.subject))
        if marker is None:
            return "no marker"
        return refuse_batch(store, task.subject, marker.etag, f"{reason}. {INTAKE_FAILED_ACTION.format(what='batch')}",
                            notifier)
    plan = refused_incoming_plan(store, task.subject, reason, INTAKE_FAILED_ACTION.format(what="job"))
    if plan is None:
        return "not ready"
    write_plan(store, plan)
    return "refused"


# ---- a phase run -----------------------------------------------------------------------------------


def load_phase_task(store: ObjectStore, phase_name: str, run_key: str) -> PhaseTask:
    task = read_model(store, layout.run_prefix(phase_name, run_key) + "_task.json", PhaseTask)
    if task is None:
        raise LookupError(f"no _task.json for {phase_name} run {run_key}")
    return task


def run_phase(store: ObjectStore, registry: PhaseRegistry, task: Task, lease: Lease, attempt: int,
              worker: str) -> str:
    phase_task = load_phase_task(store, task.step, task.subject)
    fn = registry.get(task.step)
    declared = registry.table[task.step]
    io = PhaseIO(store, phase_task, declared)
    started, started_cpu = time.perf_counter(), time.thread_time()
    try:
        result = fn(phase_task, io)
    except InvalidInput as exc:
        lease.check()
        write_run_error(store, task, "invalid_input", exc.reason, exc.user_action, attempt)
        return "invalid input"
    except ModuleNotFoundError as exc:  # the deployment lacks a backend's package: retrying cannot help
        raise PhaseUnavailable(task.step, f"a package its backends need is not installed here ({exc}); install "
                               "the profile's packages (docs/gpu.md) or run another profile") from exc
    lease.check()
    wall = round(time.perf_counter() - started, 4)
    gpu = gpu_name()
    manifest = RunManifest(
        phase=task.step,
        run_key=task.subject,
        phase_version=declared.version,
        needs={**{n: i.sha256 for n, i in phase_task.inputs.items()}, **phase_task.upstream},
        files=tuple(io.written),
        data=result.data,
        backends=result.backends,
        duration_s=wall,
        attempt=attempt,
        worker=worker,
        finished_at=utcnow(),
        usage=Usage(wall_s=wall, cpu_s=round(time.thread_time() - started_cpu, 4), gpu_s=wall if gpu else 0.0,
                    gpu=gpu),
    )
    store.put(layout.run_manifest_key(task.step, task.subject), manifest.to_bytes(), content_type="application/json")
    return "done"


def gpu_name() -> str | None:
    """The CUDA device's name when this process uses one (torch already imported and a GPU present), else None."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return str(torch.cuda.get_device_name(torch.cuda.current_device()))


def write_run_error(store: ObjectStore, task: Task, kind: str, reason: str, action: str, attempts: int) -> None:
    error = RunError(phase=task.step, run_key=task.subject, kind=kind, reason=reason,  # type: ignore[arg-type]
                     user_action=action, attempts=attempts, failed_at=utcnow())
    store.put(layout.run_error_key(task.step, task.subject), error.to_bytes(), content_type="application/json")


# ---- publish, fail, report -------------------------------------------------------------------------


def run_publish(store: ObjectStore, job_id: str, notifier: Notifier, table: PhaseTable, viewer: ViewerScript,
                prices: Prices | None = None) -> str:
    """Every run's published files (its row's `publishes`) copied under results/{job_id}/, the result page and its
    assets (index.html, turntable.webp, page/: built from those files, `viewer` the 3D viewer's script), then
    manifest.json, which lists them all, with the job's cost at `prices` (none given: no CPU price)."""
    plan = _plan(store, job_id)
    if job_status(store, plan) == "succeeded":  # published before a worker died, but never told
        published = result_manifest(store, job_id)
        assert published is not None
        return _tell_success(store, plan, notifier, [f.key for f in published.files], published.cost) + " (told again)"
    summaries: dict[str, PhaseSummary] = {}
    sources: dict[str, FileEntry] = {}
    for name, run in plan.runs.items():
        manifest = run_manifest(store, name, run.key)
        if manifest is None:
            raise LookupError(f"job {job_id}: {name} is not done; cannot publish")
        summaries[name] = PhaseSummary(run_key=manifest.run_key, duration_s=manifest.duration_s,
                                       attempt=manifest.attempt, backends=manifest.backends, data=manifest.data,
                                       usage=manifest.usage)
        declared = table.by_name.get(name)  # a phase this build no longer has publishes nothing
        for entry in manifest.files:
            if declared is not None and declared.published(entry.name):
                if entry.name in sources:
                    raise LookupError(f"job {job_id}: two phases publish {entry.name}; fix the phase table")
                sources[entry.name] = entry
    files = [FileEntry(name=e.name, key=layout.result_prefix(job_id) + e.name, size=e.size, sha256=e.sha256,
                       content_type=e.content_type) for e in sources.values()]
    in_parallel(lambda pair: store.copy(pair[0].key, pair[1].key, content_type=pair[1].content_type),
                zip(sources.values(), files, strict=True))
    shares, split = run_shares(store, plan, table)
    cost = job_cost({name: s.usage for name, s in summaries.items()}, shares, split, prices or Prices())
    files += write_result_page(store, job_id, files, plan.inputs, summaries, viewer, batch_id=plan.batch_id,
                               cost=cost)
    store.delete(layout.result_error_key(job_id))
    result = ResultManifest(job_id=job_id, batch_id=plan.batch_id, plan_hash=plan.plan_hash,
                            inputs={n: i.key for n, i in plan.inputs.items()}, files=tuple(files),
                            phases=summaries, published_at=utcnow(), cost=cost)
    store.put(layout.result_manifest_key(job_id), result.to_bytes(), content_type="application/json")
    return _tell_success(store, plan, notifier, [f.key for f in files], cost)


def run_shares(store: ObjectStore, plan: JobPlan, table: PhaseTable) -> tuple[dict[str, float], str]:
    """Each run's share counted for this job, and the rule in words. Runs are keyed by their inputs' content, so a
    batch's jobs that share a photo share the runs made from it (the avatar of a person photo, the wardrobe of a
    garment photo): a run that k of the batch's jobs use counts 1/k in each, and the batch's sum counts it once."""
    if plan.batch_id is None:
        return {}, "every run counted whole: a single job shares no run"
    batch = load_batch_plan(store, plan.batch_id)
    if batch is None:  # its jobs are planned first, the batch last: a fast job can get here in between
        raise LookupError(f"job {plan.job_id}: batch {plan.batch_id} has no plan yet; cannot split its cost")
    if all(p.job_id != plan.job_id for p in batch.jobs):
        return {}, f"every run counted whole: batch {batch.batch_id} does not list this job"
    users = Counter((name, run.key) for pair in batch.jobs if (other := load_plan(store, pair.job_id)) is not None
                    for name, run in other.runs.items())
    shares = {name: 1.0 / max(1, users[(name, run.key)]) for name, run in plan.runs.items()}
    shared = [(name, users[(name, run.key)]) for name, run in plan.runs.items() if users[(name, run.key)] > 1]
    own = [name for name in plan.runs if shares[name] == 1.0]
    said = [f"{name} {'split ' if i == 0 else ''}over the {k}{' pairs' if i == 0 else ''} with this "
            f"{' and '.join(table.by_name[name].inputs) if name in table.by_name else 'same input'} photo"
            for i, (name, k) in enumerate(shared)]
    return shares, (f"batch {batch.batch_id}: " + ", ".join(said or ["no run shared"])
                    + (f"; {' and '.join(own)} {'is' if len(own) == 1 else 'are'} the pair's own" if own else ""))


def _tell_success(store: ObjectStore, plan: JobPlan, notifier: Notifier, keys: list[str],
                  cost: JobCost | None = None) -> str:
    manifest = layout.result_manifest_key(plan.job_id)
    detail: dict[str, object] = {"manifest": manifest, "files": keys}
    if cost is not None:
        detail["cost"] = {"usd": cost.usd, "cpu_s": cost.cpu_s, "gpu_s": cost.gpu_s}
    notifier.notify(job_event(store.bucket, plan.job_id, plan.plan_hash, True, detail))
    return f"{len(keys)} files"


def job_failure(store: ObjectStore, plan: JobPlan) -> tuple[str, str, str]:
    """(phase, reason, user_action) of the job's first failure."""
    if plan.error is not None:
        return plan.error.phase, plan.error.reason, plan.error.user_action
    for name, run in plan.runs.items():
        error = run_error(store, name, run.key)
        if error is not None:
            return name, error.reason, error.user_action
    raise LookupError(f"job {plan.job_id} has no failure on record")


def run_fail(store: ObjectStore, job_id: str, notifier: Notifier) -> str:
    plan = _plan(store, job_id)
    error = job_error(store, job_id) if job_status(store, plan) == "failed" else None  # recorded, never told
    if error is None:
        phase, reason, action = job_failure(store, plan)
        store.delete(layout.result_manifest_key(job_id))  # results of older inputs must not look current
        store.delete(layout.result_page_key(job_id))
        error = JobError(job_id=job_id, batch_id=plan.batch_id, plan_hash=plan.plan_hash, phase=phase,
                         reason=reason, user_action=action, failed_at=utcnow())
        store.put(layout.result_error_key(job_id), error.to_bytes(), content_type="application/json")
    phase, reason, action = error.phase, error.reason, error.user_action
    notifier.notify(job_event(store.bucket, job_id, plan.plan_hash, False,
                              {"phase": phase, "reason": reason, "user_action": action}))
    return f"failed in {phase}"


def run_report(store: ObjectStore, batch_id: str, prices: Prices | None = None) -> str:
    batch = load_batch_plan(store, batch_id)
    if batch is None:
        raise LookupError(f"batch {batch_id} has no plan")
    report = _write_report(store, batch, prices)
    return f"{report.succeeded} succeeded, {report.failed} failed"


def _write_report(store: ObjectStore, batch: BatchPlan, prices: Prices | None = None) -> BatchReport:
    entries, manifests = [], {}
    for pair in batch.jobs:
        plan = _plan(store, pair.job_id)
        status = job_status(store, plan)
        if status == "running":
            raise LookupError(f"batch {batch.batch_id}: job {pair.job_id} is not terminal yet")
        entry = BatchJobEntry(job_id=pair.job_id, person=pair.person, garment=pair.garment, status=status)
        if status == "succeeded":
            entry = entry.model_copy(update={"result": layout.result_manifest_key(pair.job_id)})
            manifests[pair.job_id] = result_manifest(store, pair.job_id)
        else:
            phase, reason, action = job_failure(store, plan)
            entry = entry.model_copy(update={"error": reason, "user_action": action, "phase": phase})
        entries.append(entry)
    succeeded = sum(e.status == "succeeded" for e in entries)
    costs = [m.cost for m in manifests.values() if m is not None and m.cost is not None]
    report = BatchReport(batch_id=batch.batch_id, plan_hash=batch.plan_hash, total=len(entries),
                         succeeded=succeeded, failed=len(entries) - succeeded, jobs=tuple(entries),
                         finished_at=utcnow(), error=batch.error, cost=batch_cost(costs, prices or Prices())
                         if costs else None)
    write_batch_page(store, report, manifests)  # before the report, which means "the batch is done"
    store.put(layout.batch_report_key(batch.batch_id), report.to_bytes(), content_type="application/json")
    return report


def _plan(store: ObjectStore, job_id: str) -> JobPlan:
    plan = load_plan(store, job_id)
    if plan is None:
        raise LookupError(f"job {job_id} has no plan")
    return plan
