"""The GPU adapters on their real weights: opt-in, for a GPU machine that has the weights.

    DROPFIT_REAL_WEIGHTS=/path/to/weights .venv/bin/python -m pytest tests/test_real_weights.py -s

`DROPFIT_REAL_WEIGHTS` is a folder `dropfit weights pull` filled (its manifest says which models are there); the
tests of a model that is not in it skip. Unset (CI, this CPU machine), the whole module skips. Each test checks
quality on the development photos (../shared/data/tryon) and prints what it measured (seconds, GPU memory,
distances), which is what calibrating the thresholds needs. They run on whatever device the adapters pick:
CUDA when there is one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.devdata import dev_photos
from conftest import job_finished
from pipeline.backends.config import ModelConfig
from pipeline.backends.planned import PlannedBackends
from pipeline.backends.weights import read_manifest, verify

WEIGHTS = os.environ.get("DROPFIT_REAL_WEIGHTS")
OPT_IN = "opt-in: set DROPFIT_REAL_WEIGHTS to a pulled weights folder (on a GPU machine)"
pytestmark = pytest.mark.skipif(not WEIGHTS, reason=OPT_IN)
PHOTOS = 8  # dev photos per check


def pulled() -> set[str]:
    return set(read_manifest(Path(WEIGHTS or ".")).models) if WEIGHTS else set()


def needs(*keys: str) -> pytest.MarkDecorator:
    missing = [k for k in keys if k not in pulled()]
    reason = f"not pulled into DROPFIT_REAL_WEIGHTS: {', '.join(missing)}" if WEIGHTS else OPT_IN
    return pytest.mark.skipif(bool(missing), reason=reason)


@pytest.fixture(scope="module")
def backends() -> PlannedBackends:
    return PlannedBackends(ModelConfig(profile="gpu", weights_dir=Path(WEIGHTS or ".")))


@pytest.fixture(scope="module")
def people() -> list[np.ndarray]:
    photos = dev_photos("people")[:PHOTOS]
    if not photos:
        pytest.skip("the development photos (../shared/data/tryon/people) are absent")
    return [np.asarray(Image.open(p).convert("RGB")) for p in photos]


def gpu_memory_mb() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else float("nan")


def report(name: str, **figures: object) -> None:
    print(f"\n[real weights] {name}: {json.dumps(figures, default=str)}")


def test_every_pulled_model_verifies() -> None:
    for key in sorted(pulled()):
        assert verify(Path(WEIGHTS or "."), key).is_dir()


@needs("insightface")
def test_insightface_keeps_a_person_and_separates_people(backends: PlannedBackends, people: list) -> None:
    faces = backends.serving("FaceEmbedder")
    same, different, embeddings = [], [], []
    start = time.perf_counter()
    for rgb in people:
        found = faces.faces(rgb)
        if not found:
            continue
        altered = np.clip(rgb[:, ::-1].astype(np.int16) + 25, 0, 255).astype(np.uint8)  # mirrored, brighter
        again = faces.faces(altered)
        assert again, "a mirrored, brighter copy of a photo lost its face"
        same.append(float(np.linalg.norm(found[0].embedding - again[0].embedding)))
        embeddings.append(found[0].embedding)
    seconds = (time.perf_counter() - start) / max(1, 2 * len(people))
    for i in range(len(embeddings)):
        for j in range(i + 1, len(embeddings)):
            different.append(float(np.linalg.norm(embeddings[i] - embeddings[j])))
    report("insightface", seconds_per_photo=round(seconds, 3), threshold=faces.threshold,
           same_max=max(same, default=None), different_min=min(different, default=None),
           different_p05=float(np.percentile(different, 5)) if different else None)
    assert len(embeddings) >= 2, "fewer than 2 dev photos show a face"
    assert max(same) < faces.threshold
    assert np.mean(np.array(different) > faces.threshold) >= 0.95


@needs("yolo", "sam")
def test_yolo_and_sam_find_and_mask_the_person(backends: PlannedBackends, people: list) -> None:
    detector, segmenter, pose = (backends.backend(k) for k in ("ultralytics-yolo", "sam", "mediapipe-pose"))
    assert detector is not None and segmenter is not None
    ious, start = [], time.perf_counter()
    for rgb in people:
        found = detector.detect(rgb)
        assert found and found[0].score >= 0.5, "no confident person in a photo of one"
        mask = segmenter.segment_boxes(rgb, [found[0].box])[0] > 0.5
        reference = pose.find_person(rgb)
        if reference is not None:
            theirs = reference.mask > 0.5
            ious.append(float((mask & theirs).sum() / max(1, (mask | theirs).sum())))
    report("yolo+sam", seconds_per_photo=round((time.perf_counter() - start) / len(people), 3),
           iou_with_mediapipe=[round(i, 3) for i in ious], gpu_memory_mb=round(gpu_memory_mb(), 1))
    assert np.median(ious) >= 0.8


@needs("tryon", "insightface", "multiview", "refiner")
def test_a_whole_gpu_job_on_real_weights(tmp_path: Path, people: list) -> None:
    from functions.app import build_local
    from infra.settings import Settings
    from pipeline import layout
    from pipeline.manifests import ResultManifest
    from pipeline.state import load_plan, read_model, run_manifest

    garments = dev_photos("garments")
    person = dev_photos("people")[0]
    app = build_local(tmp_path / "bucket", Settings(workers=1, profile="gpu", weights_dir=Path(WEIGHTS or "."),
                                                    backends={"PersonLandmarker": "mediapipe-pose"}
                                                    if "yolo" not in pulled() else {}))
    start = time.perf_counter()
    with app.runtime:
        app.store.put(layout.incoming_image_key("real", "person", person.suffix.lstrip(".")), person.read_bytes())
        app.store.put(layout.incoming_image_key("real", "garment", garments[0].suffix.lstrip(".")),
                      garments[0].read_bytes())
        assert app.runtime.run_until(lambda: job_finished(app.store, "real"), timeout=1800)
    manifest = read_model(app.store, layout.result_manifest_key("real"), ResultManifest)
    assert manifest is not None, (tmp_path / "bucket/results/real/error.json").read_text()
    plan = load_plan(app.store, "real")
    assert plan is not None
    fitting = run_manifest(app.store, "fitting", plan.run("fitting").key)
    viewer = run_manifest(app.store, "viewer3d", plan.run("viewer3d").key)
    assert fitting is not None and viewer is not None
    tryon = fitting.data["dressing"]["tryon"]
    report("whole job", seconds=round(time.perf_counter() - start, 1), tryon=tryon, mesh=viewer.data["mesh"],
           refine=fitting.data["dressing"]["refine"],
           identity=fitting.data["identity_distance"], gpu_memory_mb=round(gpu_memory_mb(), 1))
    assert tryon["status"] == "repainted" and fitting.data["dressing"]["refine"]["status"] == "refined"
    assert viewer.data["mesh"]["status"] == "rebuilt", viewer.data["mesh"]
