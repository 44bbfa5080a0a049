"""The optional size-chart image: a third upload the wardrobe reads when it is there, never waited for."""

from __future__ import annotations

from fakes import photo
from infra.folder_store import FolderStore
from pipeline import layout
from pipeline.intake import intake_due, plan_incoming_job
from pipeline.phase_api import PhaseTask

RED, BLUE, GREY = (200, 40, 40), (40, 40, 200), (128, 128, 128)


def drop(store: FolderStore, job_id: str) -> None:
    store.put(layout.incoming_image_key(job_id, "person", "jpg"), photo(RED))
    store.put(layout.incoming_image_key(job_id, "garment", "jpg"), photo(BLUE))


def test_a_job_without_a_size_chart_plans_as_before(folder_store: FolderStore) -> None:
    drop(folder_store, "j1")
    plan = plan_incoming_job(folder_store, "j1")
    assert plan is not None and plan.error is None
    assert "size_chart" not in plan.inputs
    assert set(PhaseTask.from_plan(plan, "wardrobe").inputs) == {"garment"}


def test_a_size_chart_reaches_the_wardrobe_task_and_a_late_one_replans(folder_store: FolderStore) -> None:
    drop(folder_store, "j1")
    before = plan_incoming_job(folder_store, "j1")
    folder_store.put(layout.plan_key("j1"), before.to_bytes())  # type: ignore[union-attr]
    assert not intake_due(folder_store, "j1")
    folder_store.put(layout.incoming_image_key("j1", "size_chart", "png"), photo(GREY))
    assert intake_due(folder_store, "j1")
    after = plan_incoming_job(folder_store, "j1")
    assert after is not None and after.error is None
    task = PhaseTask.from_plan(after, "wardrobe")
    assert set(task.inputs) == {"garment", "size_chart"}
    assert after.run("avatar").key == before.run("avatar").key  # type: ignore[union-attr]
    assert after.run("wardrobe").key != before.run("wardrobe").key  # type: ignore[union-attr]


def test_an_unreadable_size_chart_refuses_the_job_with_a_clear_reason(folder_store: FolderStore) -> None:
    drop(folder_store, "j1")
    folder_store.put(layout.incoming_image_key("j1", "size_chart", "png"), b"not an image")
    plan = plan_incoming_job(folder_store, "j1")
    assert plan is not None and plan.error is not None
    assert "size-chart image" in plan.error.reason
