"""Phase 1, avatar, on the real CPU models: mediapipe landmarks and mask, dlib face identity, anny body fit.

The built-in sample person (rendered from the body model) is always available; the dev photos add real
people when ../shared/data/tryon is there.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infra.folder_store import FolderStore
from pipeline.avatar.contracts import AvatarRecord, FaceBank
from pipeline.errors import InvalidInput
from pipeline.geometry import PosedBody
from pipeline.phase_api import PhaseIO, PhaseRegistry, PhaseTask
from pipeline.plan import InputRef
from pipeline.registry import product_registry
from pipeline.sample import sample_person
from pipeline.spec import JobSpec, PersonSpec

OUTPUTS = {"body.glb", "body.npz", "camera.json", "keypoints.json", "mask.png", "upright.png", "face_bank.json",
           "measurements.json", "overlay.png", "avatar.json"}


@pytest.fixture(scope="module")
def registry() -> PhaseRegistry:
    return product_registry()


def run_avatar(store: FolderStore, registry: PhaseRegistry, photo: bytes, spec: JobSpec | None = None,
               name: str = "p") -> tuple[PhaseIO, dict[str, bytes]]:
    key = f"incoming/{name}/person.png"
    store.put(key, photo)
    ref = InputRef(key=key, etag=hashlib.md5(photo).hexdigest(), size=len(photo),
                   sha256=hashlib.sha256(photo).hexdigest())
    task = PhaseTask(phase="avatar", run_key=f"k{name}", inputs={"person": ref}, upstream={}, spec=spec or JobSpec())
    phase_io = PhaseIO(store, task)
    registry.get("avatar")(task, phase_io)
    return phase_io, {f.name: store.get(f.key) for f in phase_io.written}


def png_of(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_the_sample_person_gets_a_fitted_body_a_face_and_measurements(folder_store: FolderStore,
                                                                      registry: PhaseRegistry) -> None:
    _, files = run_avatar(folder_store, registry, sample_person())
    assert set(files) == OUTPUTS
    record = AvatarRecord.model_validate_json(files["avatar.json"])
    assert record.people_found == 1 and record.face_found
    assert record.height_source == "default" and record.height_cm == 170
    assert record.fit.reprojection_error_rel < 0.01, record.fit
    assert record.fit.mask_iou > 0.8, record.fit
    assert abs(record.measurements["height"]["value_cm"] - 170) < 2
    bank = FaceBank.model_validate_json(files["face_bank.json"])
    assert len(bank.references) == 1 and len(bank.references[0].embedding) == 128
    body = PosedBody.from_npz(files["body.npz"])
    assert body.vertices.shape == body.rest_vertices.shape and body.faces.shape[1] == 3
    assert files["body.glb"][:4] == b"glTF"
    with Image.open(io.BytesIO(files["overlay.png"])) as overlay:
        assert overlay.size == (768, 1024)
    assert json.loads(files["keypoints.json"])["photo"]["left_shoulder"]["visibility"] > 0.5


def test_the_height_in_job_json_scales_the_body(folder_store: FolderStore, registry: PhaseRegistry) -> None:
    spec = JobSpec(person=PersonSpec(height_cm=186))
    _, files = run_avatar(folder_store, registry, sample_person(), spec)
    record = AvatarRecord.model_validate_json(files["avatar.json"])
    assert record.height_source == "job.json"
    assert abs(record.measurements["height"]["value_cm"] - 186) < 2


@pytest.mark.parametrize("what", ["blank wall", "noise"])
def test_a_photo_with_no_person_is_refused_with_a_reason_a_user_understands(
        folder_store: FolderStore, registry: PhaseRegistry, what: str) -> None:
    rng = np.random.default_rng(3)
    image = (np.full((1024, 768, 3), 235, np.uint8) if what == "blank wall"
             else rng.integers(0, 255, (1024, 768, 3), dtype=np.uint8))
    with pytest.raises(InvalidInput) as caught:
        run_avatar(folder_store, registry, png_of(image))
    assert "no person found" in caught.value.reason
    assert "one standing person" in caught.value.user_action


def test_a_person_without_a_visible_face_carries_on_without_identity(folder_store: FolderStore,
                                                                     registry: PhaseRegistry) -> None:
    with Image.open(io.BytesIO(sample_person())) as image:
        rgb = np.asarray(image.convert("RGB")).copy()
    rgb[40:240, 250:520] = rgb[5, 5]  # paint the head out: the body stays
    _, files = run_avatar(folder_store, registry, png_of(rgb))
    record = AvatarRecord.model_validate_json(files["avatar.json"])
    bank = FaceBank.model_validate_json(files["face_bank.json"])
    assert not record.face_found and bank.references == () and bank.skipped_reason
    assert any("identity checks will be skipped" in n for n in record.notes)


@pytest.mark.devdata
def test_dev_people_are_found_and_fitted(dev_people: list[Path], folder_store: FolderStore,
                                         registry: PhaseRegistry) -> None:
    for n, photo in enumerate(dev_people[:4]):
        _, files = run_avatar(folder_store, registry, photo.read_bytes(), name=f"dev{n}")
        record = AvatarRecord.model_validate_json(files["avatar.json"])
        assert record.fit.reprojection_error_rel < 0.015, (photo.name, record.fit)
        assert record.fit.mask_iou > 0.7, (photo.name, record.fit)
        for name in ("chest", "waist", "hip"):
            assert 55 < record.measurements[name]["value_cm"] < 160, (photo.name, name, record.measurements)
