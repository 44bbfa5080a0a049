"""Several photos of one person in a catalog: batch.json names them, and they join the avatar's face bank."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from fakes import photo
from infra.folder_store import FolderStore
from pipeline import layout
from pipeline.avatar.contracts import AvatarRecord, FaceBank
from pipeline.intake import plan_batch, plan_incoming_job
from pipeline.phase_api import PhaseIO, PhaseTask
from pipeline.plan import InputRef
from pipeline.registry import product_registry
from pipeline.sample import sample_person
from pipeline.spec import JobSpec

RED, GREEN, BLUE = (200, 40, 40), (40, 160, 60), (40, 40, 200)


def catalog(store: FolderStore, batch: dict) -> None:
    for name, colour in (("alice.jpg", RED), ("alice-side.jpg", GREEN), ("bob.jpg", BLUE)):
        store.put(f"{layout.catalog_people_prefix('b1')}{name}", photo(colour))
    store.put(f"{layout.catalog_garments_prefix('b1')}shirt.jpg", photo(BLUE))
    store.put(layout.batch_marker_key("b1"), json.dumps(batch).encode())


def plans_by_person(store: FolderStore) -> dict[str, object]:
    planned = plan_batch(store, "b1")
    assert planned is not None
    return {p.inputs["person"].key.rsplit("/", 1)[1]: p for p in planned[2]}


def test_named_photos_of_the_same_person_become_avatar_inputs(folder_store: FolderStore) -> None:
    catalog(folder_store, {"people": {"alice.jpg": {"references": ["alice-side.jpg"]}}})
    plans = plans_by_person(folder_store)
    alice, bob = plans["alice.jpg"], plans["bob.jpg"]
    assert alice.error is None and alice.inputs["face_ref_1"].key.endswith("people/alice-side.jpg")
    assert set(PhaseTask.from_plan(alice, "avatar").inputs) == {"person", "face_ref_1"}
    assert "face_ref_1" not in bob.inputs and set(PhaseTask.from_plan(bob, "avatar").inputs) == {"person"}
    plain = FolderStore(folder_store.root.parent / "plain")
    catalog(plain, {})
    assert plans_by_person(plain)["alice.jpg"].run("avatar").key != alice.run("avatar").key  # the bank changes it
    assert plans_by_person(plain)["alice.jpg"].run("wardrobe").key == alice.run("wardrobe").key


def test_a_reference_that_is_not_in_the_batch_refuses_only_that_persons_jobs(folder_store: FolderStore) -> None:
    catalog(folder_store, {"people": {"alice.jpg": {"references": ["carol.jpg"]}}})
    plans = plans_by_person(folder_store)
    assert plans["alice.jpg"].error is not None and "carol.jpg" in plans["alice.jpg"].error.reason
    assert plans["bob.jpg"].error is None


def test_references_in_a_single_jobs_job_json_are_refused_plainly(folder_store: FolderStore) -> None:
    folder_store.put(layout.incoming_spec_key("j"), json.dumps({"person": {"references": ["x.jpg"]}}).encode())
    folder_store.put(layout.incoming_image_key("j", "person", "jpg"), photo(RED))
    folder_store.put(layout.incoming_image_key("j", "garment", "jpg"), photo(BLUE))
    plan = plan_incoming_job(folder_store, "j")
    assert plan is not None and plan.error is not None and "catalog batches only" in plan.error.reason


def ref(store: FolderStore, key: str, data: bytes) -> InputRef:
    store.put(key, data)
    digest = hashlib.sha256(data).hexdigest()
    return InputRef(key=key, etag=hashlib.md5(data).hexdigest(), size=len(data), sha256=digest)


@pytest.mark.timeout(120)
def test_the_face_bank_takes_the_other_photos_face_when_this_one_shows_none(folder_store: FolderStore) -> None:
    with Image.open(io.BytesIO(sample_person())) as image:
        rgb = np.asarray(image.convert("RGB")).copy()
    rgb[40:240, 250:520] = rgb[5, 5]  # the head painted out of the photo that is dressed
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    inputs = {"person": ref(folder_store, "catalog/b1/people/a.png", buf.getvalue()),
              "face_ref_1": ref(folder_store, "catalog/b1/people/a-2.png", sample_person())}
    task = PhaseTask(phase="avatar", run_key="kref", inputs=inputs, upstream={}, spec=JobSpec())
    phase_io = PhaseIO(folder_store, task)
    product_registry().get("avatar")(task, phase_io)
    files = {f.name: folder_store.get(f.key) for f in phase_io.written}
    bank = FaceBank.model_validate_json(files["face_bank.json"])
    assert [r.source for r in bank.references] == ["catalog/b1/people/a-2.png"]
    record = AvatarRecord.model_validate_json(files["avatar.json"])
    assert not record.face_found and any("other photos" in n for n in record.notes)
