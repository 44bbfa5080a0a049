"""A whole job on the real CPU models: the four phases, published results, a GLB the Khronos validator
accepts, identity per angle; and the identity check's rules on fakes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from gltf_validator import validate_glb
from PIL import Image

from conftest import run_sample_job
from fakes_person import FakeFaceEmbedder, fake_embedding, fake_face
from functions.app import build_local
from infra.settings import Settings
from pipeline.avatar.contracts import FaceBank, FaceReference
from pipeline.fitting.identity import identity_per_angle
from pipeline.geometry import Camera
from pipeline.manifests import ResultManifest
from pipeline.render.views import ANGLES_DEG, View
from pipeline.sample import sample_person
from pipeline.state import load_plan

ANGLE_FILES = {f"angles/{a:03d}.png" for a in ANGLES_DEG}


def view(angle: int) -> View:
    camera = Camera(1000.0, 8.0, 8.0, np.eye(3), np.zeros(3), (16, 16))
    return View(angle, camera, np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16), bool), 0.0)


def bank(identity: int) -> FaceBank:
    ref = FaceReference(source="incoming/j/person.jpg", box=(0, 0, 8, 8),
                        embedding=tuple(float(v) for v in fake_embedding(identity)))
    return FaceBank(backend="fake", threshold=0.6, references=(ref,))


def test_identity_matches_the_same_face_and_flags_another() -> None:
    same = identity_per_angle(FakeFaceEmbedder([fake_face((0, 0, 8, 8), 1)]), bank(1), [view(0), view(45)])
    assert [(i.status, i.distance) for i in same] == [("match", 0.0), ("match", 0.0)]
    other = identity_per_angle(FakeFaceEmbedder([fake_face((0, 0, 8, 8), 2)]), bank(1), [view(0)])
    assert other[0].status == "mismatch" and other[0].distance > 1.0


def test_identity_says_not_visible_and_skipped_plainly() -> None:
    assert identity_per_angle(FakeFaceEmbedder([]), bank(1), [view(0)])[0].status == "not visible"
    turned = identity_per_angle(FakeFaceEmbedder([fake_face((0, 0, 8, 8), 2)]), bank(1), [view(90), view(180)])
    assert [i.status for i in turned] == [f"skipped: the view turns {a} degrees from the photo's (faces are compared "
                                          "within 45)" for a in (90, 180)]
    empty = FaceBank(backend="fake", threshold=0.6, skipped_reason="no face visible in the photo")
    assert identity_per_angle(FakeFaceEmbedder([]), empty, [view(0)])[0].status.startswith("skipped: no face")


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ResultManifest]:
    root = tmp_path_factory.mktemp("bucket")
    return root / "results/e2e", run_sample_job(build_local(root, Settings(workers=2)), "e2e")


def test_a_job_publishes_the_glb_8_angles_contact_sheet_and_manifest(finished_job) -> None:
    folder, manifest = finished_job
    names = {f.name for f in manifest.files}
    assert {"model.glb", "contact_sheet.jpg", "fit_report.json", "fitting.json"} | ANGLE_FILES <= names
    for name in ANGLE_FILES:
        with Image.open(folder / name) as image:
            assert image.size == (768, 1024)
    assert set(manifest.phases) == {"avatar", "wardrobe", "fitting", "viewer3d"}
    fitting = manifest.phases["fitting"].data
    assert fitting["recommended_size"] and fitting["prompt_cues"] and fitting["garment_coverage"] > 0.2
    assert set(fitting["identity_distance"]) == {f"{a:03d}" for a in ANGLES_DEG}


def test_the_front_view_keeps_the_person_and_shows_the_garment(finished_job) -> None:
    folder, manifest = finished_job
    fitting = json.loads((folder / "fitting.json").read_text())
    front = fitting["identity"][0]
    assert front["status"] == "match", fitting["identity"]
    assert fitting["quality_flags"] == []
    with Image.open(folder / "angles/000.png") as image:
        rgb = np.asarray(image.convert("RGB")).astype(int)
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 90) & (rgb[..., 2] < 100)  # the sample T-shirt is red
    assert red[300:500, 250:520].mean() > 0.3, "the torso should wear the red garment"


def test_photo_png_is_the_persons_photo_with_the_garment_changed_and_nothing_else(finished_job) -> None:
    folder, manifest = finished_job
    assert "photo.png" in {f.name for f in manifest.files}
    with Image.open(folder / "photo.png") as image:
        tried = np.asarray(image.convert("RGB")).astype(int)
    person = np.asarray(Image.open(io.BytesIO(sample_person())).convert("RGB")).astype(int)
    assert tried.shape == person.shape
    record = json.loads((folder / "fitting.json").read_text())["dressing"]["photo"]
    assert record["identity"] is not None and record["identity"] < 0.1, record  # the face is the photo's own
    assert record["coverage"] > 0.9 and record["painted_share"] > 0.03 and record["guessed"] == []
    changed = np.abs(tried - person).max(axis=2) > 12
    assert not changed[:180].any(), "the head (the photo's top rows) must stay the photo's pixels"
    assert not changed[:, :60].any() and not changed[:, -60:].any(), "the background beside the person is untouched"
    red = (tried[..., 0] > 150) & (tried[..., 1] < 90) & (tried[..., 2] < 100)
    assert red[300:500, 250:520].mean() > 0.3, "the torso wears the red sample T-shirt"


def test_the_glb_passes_the_khronos_validator(finished_job) -> None:
    folder, _ = finished_job
    report = validate_glb((folder / "model.glb").read_bytes())
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"][:5]
    with Image.open(io.BytesIO((folder / "contact_sheet.jpg").read_bytes())) as sheet:
        assert sheet.size[0] > sheet.size[1]


class BrokenMeshBuilder:
    """A multi-view 3D model whose packages are missing from the deployment."""

    name = "broken-mesh"
    version = "test"

    def build_mesh(self, request: object) -> object:
        raise ModuleNotFoundError("No module named 'torchvision'")


def test_a_mesh_builder_without_its_packages_makes_viewer3d_unavailable_not_failed(finished_job) -> None:
    from infra.folder_store import FolderStore
    from pipeline.errors import PhaseUnavailable
    from pipeline.phase_api import PhaseIO, PhaseTask
    from pipeline.viewer3d.phase import Viewer3dBackends, build_viewer

    folder, _ = finished_job
    store = FolderStore(folder.parent.parent)
    plan = load_plan(store, "e2e")
    assert plan is not None
    task = PhaseTask.from_plan(plan, "viewer3d")
    with pytest.raises(PhaseUnavailable, match="broken-mesh.*No module named 'torchvision'.*profile cpu"):
        build_viewer(task, PhaseIO(store, task), Viewer3dBackends(BrokenMeshBuilder()))  # type: ignore[arg-type]
