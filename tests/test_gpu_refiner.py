"""The full-figure refiner (SDXL img2img + depth ControlNet + IP-Adapter) and phase 3's refine step.

Pre- and post-processing are plain numpy, tested on their own. The adapter runs end to end on a tiny random-weight
SDXL, ControlNet and IP-Adapter that `tiny_sdxl.tiny_sdxl_refiner` saves in the real layout (fp16 variant names)
and the adapter loads with `local_files_only=True`: on the CPU in float32, or on CUDA in float16 under
DROPFIT_TEST_DEVICE=cuda. The "keep the refined view only where identity held" choice runs against hand-written
fakes, and a whole CPU job runs with the tiny refiner planned by an override, to read what fitting.json records.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fakes_refiner import BrighteningRefiner
from tiny_sdxl import tiny_sdxl_refiner

from fakes_person import FakeFaceEmbedder, fake_face
from pipeline.avatar.contracts import FaceBank, FaceReference
from pipeline.backends.gpu.refiner import (
    NEAR_FLOOR,
    DiffusersViewRefiner,
    depth_image,
    model_size,
    refine_inputs,
    refine_output,
    refine_prompt,
    schedule_steps,
)
from pipeline.backends.gpu.tryon import feather
from pipeline.backends.protocols import Face, FaceEmbedder, RefineRequest, ViewRefiner
from pipeline.fitting.identity import AngleIdentity, identity_per_angle
from pipeline.fitting.refine import keep_mask, no_worse, person_crop, refine_requests, refine_with_identity, view_prompt
from pipeline.geometry import Camera
from pipeline.render.views import ANGLES_DEG, View
from tiny_weights import adapter_device

DEVICE = adapter_device()
SIDE = 64  # the tiny refiner's longer side

BODY = (16, 8, 48, 56)  # (x0, y0, x1, y1) of the body in the 64 x 64 test views
FACE = (26, 10, 38, 20)


def rng_image(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def body_depth(height: int = 64, width: int = 64, box: tuple[int, int, int, int] = BODY) -> np.ndarray:
    """+inf off the body; on it, nearer (2.5 m) at the centre column than at the sides (2.8 m)."""
    x0, y0, x1, y1 = box
    depth = np.full((height, width), np.inf, np.float32)
    columns = 2.5 + 0.3 * np.abs(np.linspace(-1.0, 1.0, x1 - x0, dtype=np.float32))
    depth[y0:y1, x0:x1] = columns[None, :]
    return depth


def request(seed: int = 0, size: tuple[int, int] = (48, 64), strength: float = 0.5, person_seed: int = 7,
            prompt: str = "seen from the front") -> RefineRequest:
    width, height = size
    depth = body_depth(height, width, (8, 6, width - 8, height - 6))
    keep = (~np.isfinite(depth)).astype(np.float32)
    keep[8:18, 18:30] = 1.0  # the face
    return RefineRequest(render=rng_image(100 + seed, height, width), depth=depth,
                         person=rng_image(person_seed, 40, 30), keep_mask=keep, prompt=prompt, seed=seed,
                         strength=strength)


# ---- preprocess and postprocess ----------------------------------------------------------------------------------


def test_the_depth_image_is_inverse_depth_near_bright_and_the_background_black() -> None:
    image = depth_image(body_depth())
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert (image[0, 0] == 0).all() and (image[..., 0] == image[..., 2]).all()
    assert image[30, 32, 0] == 255 and image[30, BODY[0], 0] == round(NEAR_FLOOR * 255)  # nearest, farthest
    assert image[30, 24, 0] > image[30, 18, 0]  # nearer is brighter
    flat = np.full((4, 4), 3.0, np.float32)
    assert (depth_image(flat) == 255).all() and not depth_image(np.full((4, 4), np.inf, np.float32)).any()


def test_the_model_size_keeps_the_aspect_in_multiples_of_the_pipeline() -> None:
    assert model_size((768, 1152), 32) == (672, 1024)  # 2:3 at 1024 tall, multiples of 32 (SDXL's VAE x UNet)
    assert model_size((1152, 768), 32) == (1024, 672)
    assert model_size((60, 80), 8, max_side=64) == (48, 64)
    assert model_size((10, 1000), 32) == (32, 1024)  # never below one step


def test_the_inputs_carry_the_style_the_render_and_its_depth_at_the_model_size() -> None:
    req = request(size=(60, 80), prompt="seen from the back.")
    given = refine_inputs(req, multiple=8, max_side=SIDE)
    assert given.size == (48, 64) and given.control.shape == (64, 48, 3) and given.seed == req.seed
    assert given.prompt == refine_prompt("seen from the back") and given.prompt.endswith(", seen from the back")
    assert given.control[0, 0, 0] == 0 and given.control[32, 24, 0] > 240  # resized: the nearest column, bright
    bad = RefineRequest(req.render, req.depth[:10], req.person, req.keep_mask, req.prompt, req.seed)
    with pytest.raises(ValueError, match="depth"):
        refine_inputs(bad, multiple=8)
    with pytest.raises(ValueError, match="strength"):
        refine_inputs(RefineRequest(req.render, req.depth, req.person, req.keep_mask, "", 0, strength=0.0), 8)


def test_the_output_keeps_every_pixel_of_the_keep_mask_exactly_and_fades_in_outside_it() -> None:
    req = request(size=(48, 64))
    generated = np.full((32, 24, 3), 7, np.uint8)  # at the model's size: resized back to the render's
    out = refine_output(req, generated, feather_frac=0.05)
    assert out.shape == req.render.shape and out.dtype == np.uint8
    kept = req.keep_mask > 0.5
    assert np.array_equal(out[kept], req.render[kept])
    assert (out[40, 20:28] == 7).all()  # deep inside the body: the generated pixels
    alpha = feather((~kept).astype(np.float32), 3)[18, 24]  # next to the face: partly the render's
    assert 0 < alpha < 1
    expected = np.rint(req.render[18, 24] + alpha * (7.0 - req.render[18, 24].astype(np.float32)))
    assert np.array_equal(out[18, 24], expected.astype(np.uint8))


# ---- the adapter, end to end on a tiny random-weight SDXL --------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_refiner_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("diffusers", reason="the gpu extra (diffusers, transformers) is not installed")
    pytest.importorskip("transformers", reason="the gpu extra (diffusers, transformers) is not installed")

    return tiny_sdxl_refiner(tmp_path_factory.mktemp("tiny-refiner"))


def tiny_refiner(path: Path, steps: int = 4) -> DiffusersViewRefiner:
    return DiffusersViewRefiner(path / "sdxl", path / "controlnet-depth", path / "ip-adapter", device=DEVICE,
                                steps=steps, max_side=SIDE)


@pytest.fixture(scope="module")
def refiner(tiny_refiner_path: Path) -> DiffusersViewRefiner:
    return tiny_refiner(tiny_refiner_path)


def test_the_adapter_is_a_view_refiner_that_loads_once_from_local_files(refiner: DiffusersViewRefiner) -> None:
    import torch

    checked: ViewRefiner = refiner
    assert isinstance(checked, ViewRefiner)
    assert refiner.name == "sdxl-depth-refiner" and "diffusers" in refiner.version
    pipe = refiner.load()
    assert pipe is refiner.load()
    assert pipe.unet.dtype == (torch.float16 if DEVICE == "cuda" else torch.float32)
    assert pipe.device.type == DEVICE and pipe.controlnet.device.type == DEVICE
    assert pipe.image_encoder is not None and pipe.unet.encoder_hid_proj is not None  # the IP-Adapter is in
    assert pipe.vae.use_slicing


def test_a_missing_weights_folder_fails_clearly_without_downloading(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        DiffusersViewRefiner(tmp_path / "sdxl", tmp_path / "cn", tmp_path / "ip", device=DEVICE).load()


def test_the_adapter_refines_a_batch_keeping_the_keep_mask_bit_exact(refiner: DiffusersViewRefiner) -> None:
    requests = [request(0), request(1, prompt="seen from the back"), request(2)]
    outputs = refiner.refine(requests)
    assert refiner.batches[-1] == 3  # one pipeline call: one size, one strength, one person
    for req, out in zip(requests, outputs, strict=True):
        assert out.shape == req.render.shape and out.dtype == np.uint8
        kept = req.keep_mask > 0.5
        assert np.array_equal(out[kept], req.render[kept])
        assert (out[~kept] != req.render[~kept]).any(axis=1).mean() > 0.5  # the body was refined


def test_the_same_seed_gives_the_same_output_and_the_person_and_strength_matter(
        refiner: DiffusersViewRefiner) -> None:
    (first,) = refiner.refine([request(0)])
    (again,) = refiner.refine([request(0)])
    assert np.array_equal(first, again)
    (reseeded,) = refiner.refine([seeded(request(0), 1000)])
    assert not np.array_equal(reseeded, first)
    (other_person,) = refiner.refine([request(0, person_seed=8)])
    assert not np.array_equal(other_person, first)  # IP-Adapter: the person photo steers the pass
    (stronger,) = refiner.refine([request(0, strength=0.9)])
    assert not np.array_equal(stronger, first)
    refiner.batches.clear()
    refiner.refine([request(0), request(1, person_seed=8), request(2), request(3, strength=0.9)])
    assert refiner.batches == [2, 1, 1]  # grouped by person photo and strength, in first-seen order


def test_a_short_schedule_at_low_strength_still_denoises_one_step(tiny_refiner_path: Path) -> None:
    assert schedule_steps(30, 0.35) == 30 and schedule_steps(2, 0.35) == 3 and schedule_steps(2, 0.5) == 2
    assert int(schedule_steps(1, 0.3) * 0.3) == 1
    short = tiny_refiner(tiny_refiner_path, steps=2)  # 2 x 0.35 would be no step at all
    (out,) = short.refine([request(0, strength=0.35)])
    assert out.shape == (64, 48, 3)


def seeded(req: RefineRequest, seed: int) -> RefineRequest:
    return RefineRequest(req.render, req.depth, req.person, req.keep_mask, req.prompt, seed, req.strength)


def test_the_planned_backend_is_built_from_a_verified_weights_folder(tiny_refiner_path: Path,
                                                                      tmp_path: Path) -> None:
    import shutil

    from pipeline.backends.config import ModelConfig
    from pipeline.backends.planned import PlannedBackends
    from pipeline.backends.weights import WeightsError, write_manifest

    weights = tmp_path / "weights"
    shutil.copytree(tiny_refiner_path, weights / "refiner")
    with pytest.raises(WeightsError, match="dropfit weights pull"):
        PlannedBackends(ModelConfig(profile="commercial-safe", weights_dir=weights)).serving("ViewRefiner")
    write_manifest(weights, ["refiner"])
    for profile in ("gpu", "commercial-safe"):
        config = ModelConfig(profile=profile, weights_dir=weights, refine_steps=2, refine_max_side=SIDE)
        built = PlannedBackends(config).serving("ViewRefiner")
        assert isinstance(built, DiffusersViewRefiner) and built.steps == 2 and built.max_side == SIDE
    assert PlannedBackends(ModelConfig(profile="cpu")).serving("ViewRefiner") is None  # the CPU default has none


# ---- the fitting phase's refine step on fakes --------------------------------------------------------------------


REFERENCE = np.eye(128, dtype=np.float32)[0]
SIDEWAYS = np.eye(128, dtype=np.float32)[1]
BANK = FaceBank(backend="fake-faces", threshold=0.6,
                references=(FaceReference(source="person", box=(0, 0, 10, 10), embedding=tuple(REFERENCE.tolist())),))
CAMERA = Camera(focal_px=80.0, cx=32.0, cy=32.0, rotation=np.eye(3), translation=np.array([0.0, 0.0, 3.0]),
                image_size=(64, 64))


def turntable() -> list[View]:
    """8 views: each a flat grey of 10 x its index (the body's centre pixel tells the angle), the body in BODY."""
    mask = np.zeros((64, 64), bool)
    mask[BODY[1]:BODY[3], BODY[0]:BODY[2]] = True
    return [View(angle_deg=a, camera=CAMERA, image=np.full((64, 64, 3), 10 * i, np.uint8), mask=mask, seconds=0.0)
            for i, a in enumerate(ANGLES_DEG)]


class CodedFaces:
    """A face at FACE whose distance to REFERENCE is `distances[(index, refined)]`, read from the body's centre
    pixel (10 x index, + 1 once BrighteningRefiner ran); None: no face; 0.2 for pairs not listed."""

    name = "coded-faces"
    version = "1"
    threshold = 0.6

    def __init__(self, distances: dict[tuple[int, int], float | None]) -> None:
        self.distances = distances

    def faces(self, rgb: np.ndarray) -> list[Face]:
        value = int(rgb[32, 32, 0])
        distance = self.distances.get((value // 10, value % 10), 0.2)
        if distance is None:
            return []
        a = 1 - distance**2 / 2  # |REFERENCE - e| = distance for e = a REFERENCE + b SIDEWAYS, a^2 + b^2 = 1
        embedding = a * REFERENCE + np.sqrt(max(0.0, 1 - a * a)) * SIDEWAYS
        return [Face(box=FACE, landmarks=np.zeros((5, 2), np.float32), embedding=embedding, score=0.9)]


def test_requests_hold_each_views_depth_keep_the_face_and_background_and_say_the_view() -> None:
    views = turntable()
    depths = [body_depth() for _ in views]
    person = rng_image(3, 40, 30)
    faces: FaceEmbedder = FakeFaceEmbedder([fake_face(FACE, identity=1)])
    reqs = refine_requests(faces, views, depths, person, seed=5)
    assert [r.seed for r in reqs] == list(range(5, 13)) and all(r.person is person for r in reqs)
    assert all(r.depth is d and r.render is v.image for r, d, v in zip(reqs, depths, views, strict=True))
    keep = reqs[0].keep_mask
    assert keep[0, 0] == 1 and keep[15, 32] == 1 and keep[40, 32] == 0  # background, face, body
    assert np.array_equal(keep, keep_mask(views[0], FACE))
    assert [r.prompt for r in reqs][:5] == ["seen from the front", "three-quarter view", "seen from the side",
                                            "seen from the back", "seen from the back"]
    assert view_prompt(315) == "three-quarter view" and view_prompt(270) == "seen from the side"
    with pytest.raises(ValueError, match="depth maps"):
        refine_requests(faces, views, depths[:3], person)


def test_the_person_photo_is_cropped_to_the_person() -> None:
    photo = rng_image(1, 100, 80)
    mask = np.zeros((100, 80), np.float32)
    mask[20:80, 30:50] = 1.0
    crop = person_crop(photo, mask, margin=0.05)
    assert crop.shape == (66, 22, 3) and np.array_equal(crop[3:63, 1:21], photo[20:80, 30:50])
    assert person_crop(photo, np.zeros_like(mask)) is photo


def test_each_angle_keeps_the_refined_view_only_where_identity_is_no_worse() -> None:
    faces = CodedFaces({
        (0, 0): 0.30, (0, 1): 0.25,  # better: kept
        (1, 0): 0.30, (1, 1): 0.40,  # worse: the unrefined view stays
        (7, 0): 0.30, (7, 1): None,  # the refined view lost the face: stays
        (2, 1): 0.90, (4, 0): None,  # 090 to 270 turn too far to compare faces: kept whatever they show
    })
    views = turntable()
    before = identity_per_angle(faces, BANK, views)
    refiner = BrighteningRefiner()
    checked: ViewRefiner = refiner
    reqs = refine_requests(faces, views, [body_depth() for _ in views], rng_image(3, 40, 30))
    done = refine_with_identity(checked, faces, BANK, views, before, reqs)
    assert len(refiner.batches) == 1 and len(refiner.batches[0]) == 8  # one batch for the turntable
    kept = [True, False, True, True, True, True, True, False]
    record = done.record
    assert record["status"] == "refined" and record["backend"] == "fake-refiner 1" and record["kept"] == 6
    angles = record["angles"]
    assert isinstance(angles, dict) and list(angles) == [f"{a:03d}" for a in ANGLES_DEG]
    assert [a["kept"] for a in angles.values()] == kept
    assert [a["seed"] for a in angles.values()] == list(range(8))
    assert angles["000"]["identity_before"] == pytest.approx(0.3, abs=1e-3)
    assert angles["000"]["identity_after"] == pytest.approx(0.25, abs=1e-3)
    assert angles["045"]["status"].startswith("rejected") and angles["000"]["status"] == "kept"
    for i, (view, keep_it) in enumerate(zip(done.views, kept, strict=True)):
        assert int(view.image[32, 32, 0]) == 10 * i + (1 if keep_it else 0)  # the kept view is what is returned
        assert view.image[0, 0, 0] == 10 * i  # the background is never touched
    assert done.identity[1] == before[1] and done.identity[7] == before[7]
    assert done.identity[0].distance == pytest.approx(0.25, abs=1e-3)
    assert all(done.identity[i].status.startswith("skipped: the view turns") for i in range(2, 7))


def test_a_face_the_refiner_makes_appear_is_kept_only_when_it_is_the_persons() -> None:
    faces = CodedFaces({(0, 0): None, (0, 1): 0.70, (1, 0): None, (1, 1): 0.30})
    views = [v for v in turntable() if v.angle_deg in (0, 45)]
    before = identity_per_angle(faces, BANK, views)
    reqs = refine_requests(faces, views, [body_depth() for _ in views], rng_image(3, 40, 30))
    done = refine_with_identity(BrighteningRefiner(), faces, BANK, views, before, reqs)
    assert [a["kept"] for a in done.record["angles"].values()] == [False, True]  # type: ignore[attr-defined]
    assert done.identity[0] == before[0] and done.identity[1].status == "match"


def test_without_a_face_reference_every_refined_view_is_kept_and_says_so() -> None:
    views = turntable()
    unchecked = FaceBank(backend="fake-faces", threshold=0.6, skipped_reason="no face in the person photo")
    faces = CodedFaces({})
    before = identity_per_angle(faces, unchecked, views)
    reqs = refine_requests(faces, views, [body_depth() for _ in views], rng_image(3, 40, 30))
    done = refine_with_identity(BrighteningRefiner(), faces, unchecked, views, before, reqs)
    assert done.record["kept"] == 8 and all(i.status.startswith("skipped") for i in done.identity)
    assert no_worse(AngleIdentity(0, None, "skipped: x"), AngleIdentity(0, None, "skipped: x"))
    with pytest.raises(ValueError, match="identities"):
        refine_with_identity(BrighteningRefiner(), faces, unchecked, views, before[:2], reqs)


# ---- a whole job with the tiny refiner -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def refined_job(tiny_refiner_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The sample job on the CPU stack, with the tiny SDXL refiner planned for ViewRefiner by an override."""
    import shutil

    from conftest import run_sample_job
    from functions.app import build_local
    from infra.settings import Settings
    from pipeline.backends.weights import write_manifest

    weights = tmp_path_factory.mktemp("weights")
    shutil.copytree(tiny_refiner_path, weights / "refiner")
    write_manifest(weights, ["refiner"])
    root = tmp_path_factory.mktemp("bucket")
    settings = Settings(profile="cpu", workers=2, weights_dir=weights, backends={"ViewRefiner": "sdxl-depth-refiner"},
                        refine_steps=2, refine_max_side=SIDE)
    run_sample_job(build_local(root, settings), "rf1")
    return root, json.loads((root / "results/rf1/fitting.json").read_text())


def test_the_fitting_record_says_what_the_refiner_did_per_angle(refined_job) -> None:
    root, fitting = refined_job
    refine = fitting["dressing"]["refine"]
    assert refine["status"] == "refined" and refine["backend"].startswith("sdxl-depth-refiner")
    assert fitting["dressing"]["tryon"] == {"status": "not configured"}  # the refiner runs without a painter too
    angles = refine["angles"]
    assert list(angles) == [f"{a:03d}" for a in ANGLES_DEG] and refine["kept"] == sum(a["kept"] for a in
                                                                                      angles.values())
    identity = {i["angle"]: i["distance"] for i in fitting["identity"]}
    for angle, entry in angles.items():  # fitting.json's identity is that of the view each angle kept
        assert entry["seed"] == ANGLES_DEG.index(int(angle))
        assert identity[angle] == (entry["identity_after"] if entry["kept"] else entry["identity_before"])
        assert entry["status"] == "kept" if entry["kept"] else entry["status"].startswith("rejected")
    assert (root / "results/rf1/angles/000.png").is_file()
