"""What storage says about a job or a batch, as the API's bodies. The states come from `dropfit status`'s own
functions (functions/status.py), so the API and the CLI never disagree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from functions.api.models import BatchState, BatchView, JobState, JobView, PhaseView, ResultLink
from functions.status import phase_state
from pipeline import layout
from pipeline.intake import incoming_files, is_ready, plan_is_current
from pipeline.manifests import FileEntry
from pipeline.phase_api import PhaseRegistry
from pipeline.plan import JobPlan
from pipeline.state import (
    batch_report,
    job_error,
    job_status,
    load_batch_plan,
    load_plan,
    report_current,
    result_manifest,
    run_manifest,
)
from pipeline.storage import ObjectStore

Linker = Callable[[str, FileEntry], str]  # (job id, a result file) -> a URL a client can GET it from
PAGE = "index.html"
TERMINAL: frozenset[JobState] = frozenset({"succeeded", "failed"})


def job_links(job_id: str) -> dict[str, str]:
    base = f"/v1/jobs/{job_id}"
    return {"self": base, "events": f"{base}/events", "person": f"{base}/person", "garment": f"{base}/garment"}


def job_exists(store: ObjectStore, job_id: str) -> bool:
    return load_plan(store, job_id) is not None or bool(incoming_files(store, job_id))


def job_view(store: ObjectStore, registry: PhaseRegistry, job_id: str, link: Linker) -> JobView | None:
    """The job as storage has it now; None when storage has nothing of it."""
    plan = load_plan(store, job_id)
    files = incoming_files(store, job_id)
    inputs = sorted(part for part in files if part in ("person", "garment", "size_chart", "spec"))
    base: dict[str, Any] = {"job_id": job_id, "inputs": inputs, "links": job_links(job_id)}
    if plan is None or (is_ready(files) and not plan_is_current(plan, files)):
        if plan is None and not files:
            return None
        if is_ready(files):  # intake is due: planned (again) at the next event or sweep
            return JobView(state="queued", progress=0.0, waiting_on=["intake: reading the photos"], **base)
        missing = [f"the {part} photo" for part in ("person", "garment") if part not in files]
        return JobView(state="waiting_for_inputs", progress=0.0, waiting_on=missing, **base)
    if plan.error is not None:
        error = job_error(store, job_id)
        body = error.model_dump(mode="json") if error else {"phase": "intake", **plan.error.model_dump(mode="json")}
        return JobView(state="failed", progress=0.0, error=body, **base)
    phases = phase_views(store, registry, plan)
    done = sum(p.state == "done" for p in phases)
    status = job_status(store, plan)
    if status == "succeeded":
        return succeeded_view(store, job_id, phases, link, base)
    if status == "failed":
        error = job_error(store, job_id)
        return JobView(state="failed", progress=done / max(1, len(phases)), phases=phases,
                       error=error.model_dump(mode="json") if error else None, **base)
    started = any(p.state in ("running", "done") for p in phases)
    return JobView(state="running" if started else "queued", progress=done / max(1, len(phases)),
                   phases=phases, waiting_on=waiting_on(phases, done == len(phases)), **base)


def phase_views(store: ObjectStore, registry: PhaseRegistry, plan: JobPlan) -> list[PhaseView]:
    views = []
    for name, run in plan.runs.items():
        manifest = run_manifest(store, name, run.key)
        views.append(PhaseView(
            name=name, state=phase_state(store, registry, plan, name), run_key=run.key,  # type: ignore[arg-type]
            duration_s=manifest.duration_s if manifest else None,
            finished_at=manifest.finished_at.isoformat() if manifest else None))
    return views


def waiting_on(phases: list[PhaseView], all_done: bool) -> list[str]:
    if all_done:
        return ["publish: writing the results"]
    words = {"running": "running", "pending": "queued for a worker", "waiting": "waiting for the phases before it",
             "unavailable": "not in this build (the job waits; nothing is lost)"}
    return [f"{p.name}: {words[p.state]}" for p in phases if p.state in words]


def succeeded_view(store: ObjectStore, job_id: str, phases: list[PhaseView], link: Linker,
                   base: dict[str, Any]) -> JobView:
    manifest = result_manifest(store, job_id)
    assert manifest is not None  # job_status said so
    results = [ResultLink(name=f.name, url=link(job_id, f), sha256=f.sha256, size=f.size,
                          content_type=f.content_type) for f in manifest.files]
    manifest_entry = FileEntry(name="manifest.json", key=layout.result_manifest_key(job_id), size=0, sha256="",
                               content_type="application/json")
    page = next((r.url for r in results if r.name == PAGE), None)
    return JobView(state="succeeded", progress=1.0, phases=phases, results=results, page_url=page,
                   manifest_url=link(job_id, manifest_entry), cost=manifest.cost, **base)


def batch_view(store: ObjectStore, registry: PhaseRegistry, batch_id: str, expected: list[str],
               link: Linker) -> BatchView:
    """A batch: the photos it still waits for (`expected`: keys under catalog/), then its jobs and report."""
    links = {"self": f"/v1/batches/{batch_id}", "commit": f"/v1/batches/{batch_id}/commit"}
    plan = load_batch_plan(store, batch_id)
    marker = store.head(layout.batch_marker_key(batch_id))
    if marker is None:
        missing = [key.split("/", 2)[2] for key in expected if store.head(key) is None]
        words = [f"the photo {name}" for name in missing] or ["the commit: POST " + links["commit"]]
        return BatchView(batch_id=batch_id, state="waiting_for_uploads", waiting_on=words, links=links)
    if plan is None or plan.marker_etag != marker.etag:
        return BatchView(batch_id=batch_id, state="committed", waiting_on=["intake: planning the batch"],
                         links=links)
    jobs: dict[str, JobState] = {}
    for pair in plan.jobs:
        view = job_view(store, registry, pair.job_id, link)
        jobs[pair.job_id] = view.state if view else "queued"
    report = batch_report(store, batch_id)
    if report is not None and report_current(store, plan):
        state: BatchState = "succeeded" if report.failed == 0 and report.error is None else "failed"
        return BatchView(batch_id=batch_id, state=state, jobs=jobs, report=report.model_dump(mode="json"),
                         links=links)
    left = [job for job, state in jobs.items() if state not in TERMINAL]
    return BatchView(batch_id=batch_id, state="running", jobs=jobs, links=links,
                     waiting_on=[f"{len(left)} of {len(jobs)} jobs"] if left else ["the batch report"])
