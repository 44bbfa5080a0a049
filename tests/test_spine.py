"""The spine end to end on a real folder bucket, with test phases: jobs, duplicates, reordering,
content keys, failures, retries and catalog batches."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from stuck import STUCK_CM, gated

from conftest import job_finished
from events.contracts import ObjectEvent
from fakes import RunLog, make_fake_registry, photo
from functions.app import LocalApp, build_local
from infra.settings import Settings
from pipeline import layout
from pipeline.manifests import BatchReport, JobError, ResultManifest
from pipeline.page.publish import is_page_file
from pipeline.phase_api import PhaseIO, PhaseRegistry, PhaseResult, PhaseTask
from pipeline.phases import PHASES
from pipeline.state import job_status, load_plan, read_model, run_manifest

RED, BLUE, GREEN = (200, 40, 40), (40, 40, 200), (40, 160, 60)


def make_app(root: Path, log: RunLog, **fake_options) -> LocalApp:
    settings = Settings(workers=4, lease_s=5, retry_base_s=0.05)
    return build_local(root, settings, registry=make_fake_registry(log, **fake_options))


def drop_job(app: LocalApp, job_id: str, person: bytes, garment: bytes, spec: dict | None = None) -> None:
    if spec is not None:
        app.store.put(layout.incoming_spec_key(job_id), json.dumps(spec).encode())
    app.store.put(layout.incoming_image_key(job_id, "person", "jpg"), person)
    app.store.put(layout.incoming_image_key(job_id, "garment", "jpg"), garment)


def run_job(app: LocalApp, job_id: str, person: bytes, garment: bytes, spec: dict | None = None) -> None:
    drop_job(app, job_id, person, garment, spec)
    assert app.runtime.run_until(lambda: job_finished(app.store, job_id), timeout=60)
    assert app.runtime.wait_idle(30)


@pytest.fixture
def log(tmp_path: Path) -> RunLog:
    return RunLog(tmp_path / "runs.log")


@pytest.fixture
def app(tmp_path: Path, log: RunLog):
    local = make_app(tmp_path / "bucket", log)
    with local.runtime:
        yield local


def test_a_job_runs_end_to_end_and_publishes(app: LocalApp, log: RunLog) -> None:
    run_job(app, "j1", photo(RED), photo(BLUE), {"person": {"height_cm": 170}})
    manifest = read_model(app.store, layout.result_manifest_key("j1"), ResultManifest)
    assert manifest is not None and manifest.status == "succeeded"
    names = {f.name for f in manifest.files}
    phase_files = {n for n in names if not is_page_file(n)}
    assert phase_files == {"model.json"} | {f"angles/{a:03d}.json" for a in range(0, 360, 45)}
    assert {"index.html", "page/person.jpg", "page/garment.jpg"} <= names  # the page, and the inputs it shows
    for entry in manifest.files:
        assert app.store.head(entry.key) is not None and app.store.head(entry.key).size == entry.size
    assert set(manifest.phases) == {p.name for p in PHASES}
    assert all(log.count(p.name) == 1 for p in PHASES)
    event = json.loads(app.store.get("results/j1/_events/succeeded.json"))
    assert event["type"] == "dropfit.job.succeeded" and event["subject"] == "j1"
    assert app.store.head(layout.result_error_key("j1")) is None


def test_twenty_concurrent_duplicates_of_every_event_run_each_phase_once(app: LocalApp, log: RunLog) -> None:
    events: list[ObjectEvent] = []
    app.store.subscribe(events.append)
    run_job(app, "dup", photo(RED), photo(GREEN))
    before = log.runs()
    threads = [threading.Thread(target=lambda: [app.runtime.submit_event(e) for e in events]) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert app.runtime.wait_idle(60)
    assert log.runs() == before
    assert all(log.count(p.name) == 1 for p in PHASES)


def test_duplicate_inputs_delivered_concurrently_before_any_work_run_once(tmp_path: Path, log: RunLog) -> None:
    local = make_app(tmp_path / "b", log, delay_s=0.05)
    events: list[ObjectEvent] = []
    local.store.subscribe(events.append)
    # write the inputs with no runtime listening, then deliver their events 20 times at once
    local.store.put(layout.incoming_image_key("d", "person", "jpg"), photo(RED))
    local.store.put(layout.incoming_image_key("d", "garment", "jpg"), photo(BLUE))
    inputs = list(events)
    with local.runtime:
        barrier = threading.Barrier(20)

        def deliver() -> None:
            barrier.wait()
            for event in inputs:
                local.runtime.submit_event(event)

        threads = [threading.Thread(target=deliver) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert local.runtime.run_until(lambda: job_finished(local.store, "d"), timeout=60)
    assert [log.count(p.name) for p in PHASES] == [1, 1, 1, 1]


def test_two_runtimes_on_one_bucket_share_the_work_without_repeating_it(tmp_path: Path, log: RunLog) -> None:
    first = make_app(tmp_path / "shared", log, delay_s=0.05)
    second = make_app(tmp_path / "shared", log, delay_s=0.05)
    first.store.subscribe(second.runtime.submit_event)  # every write reaches both workers
    with first.runtime, second.runtime:
        drop_job(first, "both", photo(RED), photo(BLUE))
        assert first.runtime.run_until(lambda: job_finished(first.store, "both"), timeout=60)
        second.runtime.wait_idle(30)
    assert [log.count(p.name) for p in PHASES] == [1, 1, 1, 1]


def test_reordered_events_garment_first_and_markers_before_files(tmp_path: Path, log: RunLog) -> None:
    local = make_app(tmp_path / "b", log)
    bucket = local.store.bucket
    with local.runtime:
        # done-markers and plans of this job announced before they exist: storage says not yet, nothing runs
        for key in ("work/jobs/r/plan.json", "work/avatar/abc/_manifest.json", "results/r/manifest.json",
                    "incoming/r/person.jpg"):
            local.runtime.submit_event(ObjectEvent(bucket=bucket, key=key, source="sqs"))
        assert local.runtime.wait_idle(10)
        assert log.runs() == [] and load_plan(local.store, "r") is None
        local.store.put(layout.incoming_image_key("r", "garment", "jpg"), photo(BLUE))
        assert local.runtime.wait_idle(10) and load_plan(local.store, "r") is None
        local.store.put(layout.incoming_image_key("r", "person", "jpg"), photo(RED))
        assert local.runtime.run_until(lambda: job_finished(local.store, "r"), timeout=60)
    assert [log.count(p.name) for p in PHASES] == [1, 1, 1, 1]
    assert job_status(local.store, load_plan(local.store, "r")) == "succeeded"


def test_same_bytes_again_is_no_new_work_and_a_new_garment_reruns_only_what_depends_on_it(
    app: LocalApp, log: RunLog
) -> None:
    run_job(app, "c", photo(RED), photo(BLUE))
    first = load_plan(app.store, "c")
    app.store.put(layout.incoming_image_key("c", "garment", "jpg"), photo(BLUE))  # same bytes
    assert app.runtime.wait_idle(10)
    assert [log.count(p.name) for p in PHASES] == [1, 1, 1, 1]
    app.store.put(layout.incoming_image_key("c", "garment", "jpg"), photo(GREEN))
    assert app.runtime.run_until(lambda: load_plan(app.store, "c") != first and job_finished(app.store, "c"),
                                 timeout=60)
    assert [log.count(p.name) for p in PHASES] == [1, 2, 2, 2]
    second = load_plan(app.store, "c")
    assert second.run("avatar") == first.run("avatar") and second.run("wardrobe") != first.run("wardrobe")
    manifest = read_model(app.store, layout.result_manifest_key("c"), ResultManifest)
    assert manifest.plan_hash == second.plan_hash


def test_a_second_job_with_the_same_person_reuses_its_avatar(app: LocalApp, log: RunLog) -> None:
    run_job(app, "p1", photo(RED), photo(BLUE))
    run_job(app, "p2", photo(RED), photo(GREEN))
    assert log.count("avatar") == 1 and log.count("wardrobe") == 2


def test_invalid_photo_fails_the_job_with_a_clear_error_and_no_retry(app: LocalApp, log: RunLog) -> None:
    app.store.put(layout.incoming_image_key("bad", "person", "jpg"), b"this is not a jpeg")
    app.store.put(layout.incoming_image_key("bad", "garment", "jpg"), photo(BLUE))
    assert app.runtime.run_until(lambda: job_finished(app.store, "bad"), timeout=30)
    error = read_model(app.store, layout.result_error_key("bad"), JobError)
    assert error.phase == "intake" and "person photo" in error.reason and "not a readable image" in error.reason
    assert "upload" in error.user_action
    assert log.runs() == []
    event = json.loads(app.store.get("results/bad/_events/failed.json"))
    assert event["type"] == "dropfit.job.failed" and event["data"]["phase"] == "intake"


def test_invalid_input_found_by_a_phase_fails_once_and_is_not_retried(app: LocalApp, log: RunLog) -> None:
    run_job(app, "dark", photo((0, 0, 0)), photo(BLUE))
    error = read_model(app.store, layout.result_error_key("dark"), JobError)
    assert error.phase == "avatar" and "no person found" in error.reason
    assert log.count("avatar") == 1 and log.count("fitting") == 0


def test_invalid_job_spec_names_the_bad_field(app: LocalApp) -> None:
    run_job(app, "spec", photo(RED), photo(BLUE), {"person": {"hieght_cm": 170}})
    error = read_model(app.store, layout.result_error_key("spec"), JobError)
    assert "person.hieght_cm" in error.reason


def test_retryable_errors_are_retried_with_backoff_until_success(tmp_path: Path, log: RunLog) -> None:
    local = make_app(tmp_path / "b", log, flaky={"wardrobe": 2})
    with local.runtime:
        run_job(local, "flaky", photo(RED), photo(BLUE))
    assert log.count("wardrobe") == 3
    manifest = read_model(local.store, layout.result_manifest_key("flaky"), ResultManifest)
    assert manifest.phases["wardrobe"].attempt == 3


def test_retries_exhausted_fail_the_job_with_a_readable_error(tmp_path: Path, log: RunLog) -> None:
    local = make_app(tmp_path / "b", log, flaky={"fitting": 99})
    with local.runtime:
        run_job(local, "broken", photo(RED), photo(BLUE))
    error = read_model(local.store, layout.result_error_key("broken"), JobError)
    assert error.phase == "fitting" and "failed 3 times" in error.reason
    assert log.count("fitting") == 3


def test_a_phase_missing_a_package_waits_unavailable_instead_of_failing_the_job(tmp_path: Path, log: RunLog) -> None:
    fakes = make_fake_registry(log)
    calls: list[str] = []

    def viewer3d_without_its_package(task: PhaseTask, io_: PhaseIO) -> PhaseResult:
        calls.append(task.run_key)
        raise ModuleNotFoundError("No module named 'hy3dgen'")

    phases = {p.name: fakes.get(p.name) for p in fakes.table} | {"viewer3d": viewer3d_without_its_package}
    outcomes: list = []
    local = build_local(tmp_path / "b", Settings(workers=2, retry_base_s=0.01),
                        registry=PhaseRegistry(phases, table=fakes.table), on_outcome=outcomes.append)
    with local.runtime:
        drop_job(local, "waits", photo(RED), photo(BLUE))
        assert not local.runtime.run_until(lambda: job_finished(local.store, "waits"), timeout=30)
    viewer = [o for o in outcomes if o.task.step == "viewer3d"]
    assert viewer and len(calls) == len(viewer)
    assert all(o.outcome == "unavailable" and o.attempt == 1 for o in viewer)  # not retried: it would not help
    assert "No module named 'hy3dgen'" in viewer[0].detail
    assert job_status(local.store, load_plan(local.store, "waits")) == "running"  # nothing lost: it waits
    assert local.store.head(layout.result_error_key("waits")) is None


def test_catalog_2_people_x_3_garments_with_one_corrupt_garment(app: LocalApp, log: RunLog) -> None:
    store = app.store
    for name, colour in (("alice.jpg", RED), ("bob.jpg", GREEN)):
        store.put(f"{layout.catalog_people_prefix('spring')}{name}", photo(colour))
    for name, colour in (("shirt.jpg", BLUE), ("dress.jpg", (200, 200, 40))):
        store.put(f"{layout.catalog_garments_prefix('spring')}{name}", photo(colour))
    store.put(f"{layout.catalog_garments_prefix('spring')}broken.jpg", photo(BLUE)[:200])  # truncated JPEG
    assert log.runs() == []  # nothing starts before the commit marker
    store.put(layout.batch_marker_key("spring"), b"{}")
    assert app.runtime.run_until(lambda: store.head(layout.batch_report_key("spring")) is not None, timeout=60)
    report = read_model(store, layout.batch_report_key("spring"), BatchReport)
    assert (report.total, report.succeeded, report.failed) == (6, 4, 2)
    failed = [j for j in report.jobs if j.status == "failed"]
    assert {j.garment for j in failed} == {"broken.jpg"}
    assert all("broken.jpg" in j.error and "not a readable image" in j.error for j in failed)
    assert all(j.result and store.head(j.result) for j in report.jobs if j.status == "succeeded")
    assert log.count("avatar") == 2 and log.count("wardrobe") == 2 and log.count("fitting") == 4
    assert layout.catalog_job_id("spring", "alice.jpg", "shirt.jpg") in {j.job_id for j in report.jobs}


def test_one_structured_log_line_per_phase_run_with_job_phase_attempt_duration(app: LocalApp) -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        run_job(app, "logged", photo(RED), photo(BLUE))
    runs = [entry for entry in logs if entry["event"] == "step.run" and "phase" in entry]
    assert sorted(entry["phase"] for entry in runs if entry["outcome"] == "done") == sorted(p.name for p in PHASES)
    for entry in runs:
        assert entry["job"] == "logged" and entry["attempt"] >= 1 and entry["duration_ms"] >= 0
    steps = {entry["step"] for entry in logs if entry["event"] == "step.run" and "step" in entry}
    assert {"intake", "publish"} <= steps


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_an_outcome_recorded_but_never_told_is_told_by_the_sweeper(app: LocalApp, log: RunLog, outcome: str) -> None:
    """A worker that dies between writing the outcome and telling the subscribers: the sweeper tells them,
    from the outcome on record (the result manifest or error is not rewritten), once."""
    person = photo(RED) if outcome == "succeeded" else b"not a jpeg"
    run_job(app, "told", person, photo(BLUE))
    record = layout.result_manifest_key("told") if outcome == "succeeded" else layout.result_error_key("told")
    before = app.store.get(record)
    event_key = layout.result_event_key("told", outcome)
    app.store.delete(event_key)  # as if the worker died before telling
    assert [t.step for t in app.runtime.sweep()] == ["publish" if outcome == "succeeded" else "fail"]
    assert app.runtime.wait_idle(30)
    assert json.loads(app.store.get(event_key))["type"] == f"dropfit.job.{outcome}"
    assert app.store.get(record) == before
    assert app.runtime.sweep() == []


# ---- lanes and stopping: a phase that cannot be interrupted never holds up the rest --------------------------

def test_a_finished_job_is_published_while_every_phase_worker_is_held(tmp_path: Path, log: RunLog) -> None:
    """The watcher's unpublished jobs: publish waited in one queue behind every phase run, so one stuck run
    (and a backlog of others) held finished jobs back until the periodic sweep could not help (the task was
    'in flight'). Orchestration steps have threads of their own now."""
    root = tmp_path / "b"
    done = make_app(root, log)
    with done.runtime:
        run_job(done, "ready", photo(RED), photo(BLUE))
    for key in (layout.result_manifest_key("ready"), layout.result_event_key("ready", "succeeded")):
        done.store.delete(key)  # as if the last phase had just ended: storage says publish is due
    gate, started = threading.Event(), threading.Event()
    local = build_local(root, Settings(workers=1, lease_s=5), registry=gated(log, "avatar", gate, started))
    with local.runtime:
        try:
            drop_job(local, "stuck", photo(GREEN), photo(BLUE), {"person": {"height_cm": STUCK_CM}})
            assert started.wait(30), "the stuck phase never started"
            local.runtime.sweep()  # what the watcher's periodic sweep does
            assert local.runtime.run_until(lambda: job_finished(local.store, "ready"), timeout=30)
            assert not gate.is_set(), "published while the only phase worker was still held"
        finally:
            gate.set()


def test_later_phases_go_first_so_a_job_under_way_finishes_before_new_ones_start(tmp_path: Path,
                                                                                log: RunLog) -> None:
    local = build_local(tmp_path / "b", Settings(workers=1, lease_s=5), registry=make_fake_registry(log))
    with local.runtime:
        for i in range(3):
            drop_job(local, f"o{i}", photo((100 + 40 * i, 40, 40)), photo((40, 40, 100 + 40 * i)))
        assert local.runtime.run_until(lambda: all(job_finished(local.store, f"o{i}") for i in range(3)),
                                       timeout=60)
    order = [phase for phase, _ in log.runs()]
    assert order.index("viewer3d") < len(order) - 1 - order[::-1].index("avatar"), \
        "the first job's viewer3d ran before the last job's avatar"


def test_stop_drops_what_waits_and_releases_what_still_runs_after_the_grace(tmp_path: Path, log: RunLog) -> None:
    gate, started = threading.Event(), threading.Event()
    local = build_local(tmp_path / "b", Settings(workers=1, lease_s=5), registry=gated(log, "wardrobe", gate, started))
    try:
        local.runtime.start()
        drop_job(local, "stuck", photo(GREEN), photo(BLUE), {"person": {"height_cm": STUCK_CM}})
        assert started.wait(30)
        plan = load_plan(local.store, "stuck")
        claim = layout.claim_key("wardrobe", plan.run("wardrobe").key)
        assert local.store.head(claim) is not None
        avatar_runs = log.count("avatar")  # the avatar waits behind the held worker (or already ran)
        released = local.runtime.stop(grace_s=0.2, deliveries_s=0)
        assert [t.step for t in released] == ["wardrobe"]
        assert local.store.head(claim) is None, "the claim goes to the next worker at once"
        gate.set()
        time.sleep(0.2)
        assert log.count("avatar") == avatar_runs, "a queued task was started after the stop"
        assert run_manifest(local.store, "wardrobe", plan.run("wardrobe").key) is None, "committed after release"
    finally:
        gate.set()
    # the next worker finds everything still due and finishes the job
    again = make_app(tmp_path / "b", log)
    with again.runtime:
        assert again.runtime.run_until(lambda: job_finished(again.store, "stuck"), timeout=60)


def test_a_refused_batch_tells_its_subscribers_like_a_failed_job(app: LocalApp) -> None:
    app.store.put(f"{layout.catalog_people_prefix('empty')}alice.jpg", photo(RED))
    app.store.put(layout.batch_marker_key("empty"), b"{}")  # no garments: the batch is refused as a whole
    assert app.runtime.run_until(lambda: app.store.head(layout.batch_report_key("empty")) is not None, timeout=30)
    assert app.runtime.wait_idle(30)
    report = read_model(app.store, layout.batch_report_key("empty"), BatchReport)
    assert report is not None and report.error and report.total == 0
    event = json.loads(app.store.get("results/batches/empty/_events/failed.json"))
    assert event["type"] == "dropfit.batch.failed" and event["subject"] == "batches/empty"
    assert event["data"]["report"] == layout.batch_report_key("empty") and "0 garments" in event["data"]["reason"]
    assert event["data"]["links"]["error"].endswith("results/batches/empty/report.json")
