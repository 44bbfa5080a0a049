"""The router on a real folder bucket: from an object event and what storage holds, the tasks now ready."""

from __future__ import annotations

from pathlib import Path

import pytest

from events.contracts import ObjectEvent
from events.router import pending_tasks, route
from events.tasks import Task
from fakes import photo
from functions.steps import write_plan
from infra.folder_store import FolderStore
from pipeline import layout
from pipeline.intake import plan_incoming_job
from pipeline.manifests import RunError, RunManifest, utcnow
from pipeline.phases import PHASES
from pipeline.plan import JobPlan

RED, BLUE, GREEN = (200, 40, 40), (40, 40, 200), (40, 160, 60)


@pytest.fixture
def store(tmp_path: Path) -> FolderStore:
    return FolderStore(tmp_path / "bucket")


def put(store: FolderStore, key: str, data: bytes) -> ObjectEvent:
    store.put(key, data)
    event = store.event_for(key)
    assert event is not None
    return event


def drop(store: FolderStore, job_id: str, role: str, colour: tuple[int, int, int]) -> ObjectEvent:
    return put(store, layout.incoming_image_key(job_id, role, "jpg"), photo(colour))  # type: ignore[arg-type]


def planned(store: FolderStore, job_id: str, person=RED, garment=BLUE) -> tuple[JobPlan, ObjectEvent]:
    drop(store, job_id, "person", person)
    drop(store, job_id, "garment", garment)
    plan = plan_incoming_job(store, job_id)
    assert plan is not None and plan.error is None
    write_plan(store, plan)
    event = store.event_for(layout.plan_key(job_id))
    assert event is not None
    return plan, event


def finish(store: FolderStore, phase: str, run_key: str) -> ObjectEvent:
    manifest = RunManifest(
        phase=phase,
        run_key=run_key,
        phase_version=PHASES[phase].version,
        needs={},
        files=(),
        duration_s=0.0,
        attempt=1,
        worker="test",
        finished_at=utcnow(),
    )
    return put(store, layout.run_manifest_key(phase, run_key), manifest.to_bytes())


def fail(store: FolderStore, phase: str, run_key: str) -> ObjectEvent:
    error = RunError(
        phase=phase,
        run_key=run_key,
        kind="invalid_input",
        reason="no person found",
        user_action="use a photo with one standing person",
        attempts=1,
        failed_at=utcnow(),
    )
    return put(store, layout.run_error_key(phase, run_key), error.to_bytes())


def run_task(plan: JobPlan, phase: str) -> Task:
    return Task(step=phase, subject=plan.run(phase).key)


# ---- intake ----------------------------------------------------------------------------------------


def test_person_alone_is_not_a_job(store: FolderStore) -> None:
    assert route(drop(store, "j1", "person", RED), store) == []


@pytest.mark.parametrize(("first", "second"), [("person", "garment"), ("garment", "person")])
def test_second_photo_makes_an_intake_task(store: FolderStore, first: str, second: str) -> None:
    assert route(drop(store, "j1", first, RED), store) == []
    assert route(drop(store, "j1", second, BLUE), store) == [Task(step="intake", subject="j1")]


def test_intake_is_not_repeated_once_the_plan_is_current(store: FolderStore) -> None:
    planned(store, "j1")
    again = store.event_for(layout.incoming_image_key("j1", "garment", "jpg"))
    assert again is not None
    assert route(again, store) == []
    new_garment = drop(store, "j1", "garment", GREEN)
    assert route(new_garment, store) == [Task(step="intake", subject="j1")]


def test_spec_arriving_after_the_photos_replans(store: FolderStore) -> None:
    planned(store, "j1")
    event = put(store, layout.incoming_spec_key("j1"), b'{"person": {"height_cm": 180}}')
    assert route(event, store) == [Task(step="intake", subject="j1")]


# ---- phases ----------------------------------------------------------------------------------------


def test_plan_event_starts_the_phases_without_needs(store: FolderStore) -> None:
    plan, event = planned(store, "j1")
    assert route(event, store) == [run_task(plan, "avatar"), run_task(plan, "wardrobe")]


def test_fitting_waits_for_both_avatar_and_wardrobe(store: FolderStore) -> None:
    plan, _ = planned(store, "j1")
    after_avatar = route(finish(store, "avatar", plan.run("avatar").key), store)
    assert after_avatar == []  # fitting still needs the wardrobe; avatar's end unblocks nothing else
    after_wardrobe = route(finish(store, "wardrobe", plan.run("wardrobe").key), store)
    assert after_wardrobe == [run_task(plan, "fitting")]


def test_fitting_starts_whichever_of_avatar_and_wardrobe_ends_last(store: FolderStore) -> None:
    plan, _ = planned(store, "j1")
    assert route(finish(store, "wardrobe", plan.run("wardrobe").key), store) == []
    assert route(finish(store, "avatar", plan.run("avatar").key), store) == [run_task(plan, "fitting")]


def test_last_phase_done_means_publish(store: FolderStore) -> None:
    plan, _ = planned(store, "j1")
    for phase in ("avatar", "wardrobe"):
        finish(store, phase, plan.run(phase).key)
    assert route(finish(store, "fitting", plan.run("fitting").key), store) == [run_task(plan, "viewer3d")]
    assert route(finish(store, "viewer3d", plan.run("viewer3d").key), store) == [
        Task(step="publish", subject="j1")
    ]


def test_a_failed_run_fails_every_job_that_uses_it(store: FolderStore) -> None:
    one, _ = planned(store, "j1", person=RED, garment=BLUE)
    two, _ = planned(store, "j2", person=RED, garment=GREEN)  # same person bytes: a shared avatar run
    unrelated, _ = planned(store, "j3", person=GREEN, garment=BLUE)
    assert one.run("avatar").key == two.run("avatar").key != unrelated.run("avatar").key
    tasks = route(fail(store, "avatar", one.run("avatar").key), store)
    assert sorted(tasks, key=str) == [Task(step="fail", subject="j1"), Task(step="fail", subject="j2")]


def test_a_shared_run_wakes_every_job_that_uses_it(store: FolderStore) -> None:
    one, _ = planned(store, "j1", person=RED, garment=BLUE)
    two, _ = planned(store, "j2", person=RED, garment=GREEN)
    for plan in (one, two):
        finish(store, "wardrobe", plan.run("wardrobe").key)
    tasks = route(finish(store, "avatar", one.run("avatar").key), store)
    assert sorted(tasks, key=str) == sorted([run_task(one, "fitting"), run_task(two, "fitting")], key=str)


def test_a_run_the_job_no_longer_uses_wakes_nothing(store: FolderStore) -> None:
    old, _ = planned(store, "j1", garment=BLUE)
    new, _ = planned(store, "j1", garment=GREEN)  # the garment was replaced and re-planned
    assert old.run("wardrobe").key != new.run("wardrobe").key
    finish(store, "avatar", new.run("avatar").key)
    assert route(finish(store, "wardrobe", old.run("wardrobe").key), store) == []


@pytest.mark.parametrize(
    "key",
    [
        "work/x/y/_claim.json",
        "work/avatar/0123/_claim.json",
        "work/avatar/0123/_task.json",
        "work/avatar/0123/_jobs/j1",
        "work/fitting/0123/angles/000.png",
        "results/j/angles/000.png",
        "results/batches/b1/report.json",
        "catalog/b1/people/p.jpg",
        "random/key",
        "incoming/jobs/person.jpg",
    ],
)
def test_irrelevant_keys_route_to_nothing(store: FolderStore, key: str) -> None:
    planned(store, "j1")
    assert route(ObjectEvent(bucket=store.bucket, key=key, source="folder"), store) == []


def test_batch_marker_routes_to_a_batch_task(store: FolderStore) -> None:
    event = put(store, layout.batch_marker_key("b1"), b"{}")
    assert route(event, store) == [Task(step="batch", subject="b1")]


# ---- the sweeper's view ----------------------------------------------------------------------------


def test_pending_tasks_finds_a_ready_job_and_an_unplanned_batch(store: FolderStore) -> None:
    drop(store, "j1", "person", RED)
    drop(store, "j1", "garment", BLUE)
    drop(store, "half", "person", RED)  # not ready: no task
    store.put(layout.catalog_people_prefix("b1") + "alice.jpg", photo(RED))
    store.put(layout.catalog_garments_prefix("b1") + "dress.jpg", photo(BLUE))
    store.put(layout.batch_marker_key("b1"), b"{}")
    assert pending_tasks(store) == [Task(step="intake", subject="j1"), Task(step="batch", subject="b1")]


def test_pending_tasks_after_planning_lists_the_ready_runs(store: FolderStore) -> None:
    plan, _ = planned(store, "j1")
    assert pending_tasks(store) == [run_task(plan, "avatar"), run_task(plan, "wardrobe")]


def test_empty_bucket_has_nothing_pending(store: FolderStore) -> None:
    assert pending_tasks(store) == []
