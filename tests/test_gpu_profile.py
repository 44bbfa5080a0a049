"""The `gpu` profile end to end on CPU: every phase through its Modal class's `.local()` against S3 on moto, with
the GPU adapters loading tiny random-weight models (FLUX Fill try-on, InsightFace ONNX, SAM, Hunyuan3D-2mv)
from a verified weights folder. The outputs are noise; the code path (verify, load, batch, repaint, identity
retry, rebuild the mesh, publish) is the real one. The person detector (ultralytics YOLO) cannot run here: it
needs torchvision's C++ operators (nms), which PyPI's torchvision cannot load next to CPU torch, so the plan's
person landmarker is overridden to mediapipe (its own adapter is tested on its own)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import LOCAL_VOLUME_WARNING, TORCHVISION_MISSING, plan_sample_job_on_s3
from pipeline import layout
from pipeline.phases import PHASES
from pipeline.state import run_manifest
from tiny_weights import write_tiny_weights


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if TORCHVISION_MISSING:
        pytest.skip(f"the multi-view 3D model needs torchvision: {TORCHVISION_MISSING}")
    return write_tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture
def gpu_env(s3_env, monkeypatch: pytest.MonkeyPatch, tiny_weights: Path) -> None:
    monkeypatch.setenv("DROPFIT_PROFILE", "gpu")
    monkeypatch.setenv("DROPFIT_WEIGHTS_DIR", str(tiny_weights))
    monkeypatch.setenv("DROPFIT_BACKENDS", json.dumps({"PersonLandmarker": "mediapipe-pose"}))
    monkeypatch.setenv("DROPFIT_TRYON_STEPS", "2")
    monkeypatch.setenv("DROPFIT_TRYON_MAX_SIDE", "64")
    monkeypatch.setenv("DROPFIT_REFINE_STEPS", "2")
    monkeypatch.setenv("DROPFIT_REFINE_MAX_SIDE", "64")
    monkeypatch.setenv("DROPFIT_MESH_STEPS", "2")
    monkeypatch.setenv("DROPFIT_MESH_RESOLUTION", "32")


@pytest.mark.filterwarnings(LOCAL_VOLUME_WARNING)
def test_the_gpu_profile_runs_a_whole_job_through_local(gpu_env, s3_client, s3_bucket) -> None:
    import modal_deploy

    store, plan = plan_sample_job_on_s3(s3_client, s3_bucket, "g1")
    assert plan is not None and plan.profile == "gpu" and plan.backends["MeshBuilder"] == "hunyuan3d-2mv"
    for phase in PHASES:
        key = plan.run(phase.name).key
        result = modal_deploy.PHASE_CLASSES[phase.name](phase=phase.name).run.local(key, s3_bucket)
        assert (result["step"], result["outcome"]) == (phase.name, "done"), result
    avatar = run_manifest(store, "avatar", plan.run("avatar").key)
    fitting = run_manifest(store, "fitting", plan.run("fitting").key)
    assert avatar is not None and avatar.backends["faces"].startswith("insightface")
    assert fitting is not None and fitting.backends["faces"].startswith("insightface")
    tryon = fitting.data["dressing"]["tryon"]
    assert tryon["status"] == "repainted" and tryon["painter"].startswith("flux-fill-tryon")
    assert set(tryon["tries"]) == {f"{a:03d}" for a in range(0, 360, 45)}
    assert all(0 <= t <= 3 for t in tryon["tries"].values())
    unseen = tryon["unseen_share"]  # photo.png carries the try-on where it sees the garment: only the rest is painted
    assert unseen["000"] < tryon["min_unseen_share"] and tryon["tries"]["000"] == 0
    assert unseen["180"] > 0.5 and tryon["tries"]["180"] >= 1
    refine = fitting.data["dressing"]["refine"]  # the full-figure pass after the try-on, per angle
    assert refine["status"] == "refined" and refine["backend"].startswith("sdxl-depth-refiner")
    assert set(refine["angles"]) == set(tryon["tries"]) and all(isinstance(a["kept"], bool)
                                                                for a in refine["angles"].values())
    viewer = run_manifest(store, "viewer3d", plan.run("viewer3d").key)
    assert viewer is not None and viewer.backends["mesh"].startswith("hunyuan3d-2mv")
    mesh = viewer.data["mesh"]  # a random-weight model's surface is noise: placed and scored, then declined
    assert mesh["status"] == "declined" and 0.0 <= mesh["silhouette_iou"] < 0.6 and mesh["faces"] > 0
    assert modal_deploy.run_task.local("publish", "g1", s3_bucket)["outcome"] in ("done", "skipped")
    manifest = json.loads(s3_client.get_object(Bucket=s3_bucket, Key=layout.result_manifest_key("g1"))["Body"].read())
    names = {f["name"] if isinstance(f, dict) else f for f in manifest["files"]}
    assert "model.glb" in names and "angles/000.png" in names


def test_a_corrupt_weight_file_stops_the_phase_with_the_fix(tiny_weights: Path, tmp_path: Path) -> None:
    import shutil

    from pipeline.backends.config import ModelConfig
    from pipeline.backends.planned import PlannedBackends
    from pipeline.backends.weights import WeightsError

    copy = tmp_path / "weights"
    shutil.copytree(tiny_weights, copy)
    model = next((copy / "sam").glob("*.safetensors"))
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF  # one byte changed, the size kept
    model.write_bytes(bytes(data))
    backends = PlannedBackends(ModelConfig(profile="gpu", weights_dir=copy))
    with pytest.raises(WeightsError, match="sha256.*dropfit weights pull"):
        backends.backend("sam")
