"""The try-on adapter (FLUX.1 Fill, in-context diptych) and phase 3's repaint-with-identity loop.

Pre- and post-processing are plain numpy, tested on their own (the 3:4 framing and CatVTON's mask growth in
tryon_framing too). The adapter runs end to end with 48x64 halves on a tiny random-weight FluxFillPipeline that
`tiny_diffusers.tiny_flux_fill` saves to disk and the adapter loads with `local_files_only=True`, as it loads real
weights: on the CPU in float32, or on CUDA in bfloat16 under DROPFIT_TEST_DEVICE=cuda (tests/tiny_weights.py).
The identity loop runs against hand-written fakes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fakes_person import FakeFaceEmbedder, fake_face
from pipeline.avatar.contracts import FaceBank, FaceReference
from pipeline.backends.gpu.tryon import (
    TRAINING_CAPTION,
    DiffusersTryOnPainter,
    composite,
    diptych,
    diptychs,
    feather,
    half_size,
    letterbox,
    product_shot,
    request_frame,
    tryon_output,
    tryon_prompt,
)
from pipeline.backends.gpu.tryon_framing import agnostic_mask, agnostic_region, crop, frame_box, paste, product_box
from pipeline.backends.protocols import Face, FaceEmbedder, TryOnPainter, TryOnRequest
from pipeline.errors import RetryableError
from pipeline.fitting.tryon import (
    RETRY_SEED_STEP,
    face_keep_mask,
    garment_on_white,
    repaint_with_identity,
    tryon_request,
    tryon_requests,
    view_cue,
)
from pipeline.geometry import Camera
from pipeline.render.views import ANGLES_DEG, View
from tiny_diffusers import tiny_flux_fill
from tiny_weights import adapter_device

DEVICE = adapter_device()
SIDE = 64  # the tiny painter's half height: 48 x 64 halves

Box = tuple[int, int, int, int]


def rng_image(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def box_mask(height: int, width: int, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = box
    mask = np.zeros((height, width), dtype=np.float32)
    mask[y0:y1, x0:x1] = 1.0
    return mask


def request(seed: int = 0, size: tuple[int, int] = (64, 64), prompt: str = "snug across the chest",
            paint: Box = (16, 24, 48, 56), keep: Box | None = (24, 2, 40, 18)) -> TryOnRequest:
    width, height = size
    return TryOnRequest(
        render=rng_image(100 + seed, height, width),
        paint_mask=box_mask(height, width, paint),
        keep_mask=box_mask(height, width, keep) if keep else np.zeros((height, width), np.float32),
        garment=np.full((30, 20, 3), (200, 30, 30), dtype=np.uint8),
        prompt=prompt,
        seed=seed,
    )


# ---- preprocess --------------------------------------------------------------------------------------------------


def test_each_half_is_3_by_4_in_multiples_of_the_pipeline() -> None:
    assert half_size(16) == (768, 1024)  # CatVTON-FLUX's serving size, FLUX's multiple of 16
    assert half_size(16, max_side=800) == (576, 768)  # its training size
    assert half_size(4, max_side=64) == (48, 64)
    assert half_size(16, max_side=10) == (48, 64)  # never below one step


def test_letterbox_fits_the_garment_on_white_keeping_its_aspect() -> None:
    garment = np.zeros((40, 20, 3), dtype=np.uint8)  # tall and black
    boxed = letterbox(garment, (60, 40))  # wide box: the garment becomes 20 x 40, centred
    assert boxed.shape == (40, 60, 3)
    dark = np.argwhere(boxed.max(axis=2) < 128)
    assert dark[:, 1].min() == 20 and dark[:, 1].max() == 39 and dark[:, 0].min() == 0 and dark[:, 0].max() == 39
    assert (boxed[:, :20] == 255).all() and (boxed[:, 40:] == 255).all()


def test_the_garment_half_is_a_product_shot_of_the_garment_alone() -> None:
    photo = np.full((300, 400, 3), 255, np.uint8)
    photo[100:200, 150:250] = (200, 30, 30)  # a small garment in a big white photo
    assert product_box(photo) == (144, 94, 256, 206)  # grown by 6 % of its side
    shot = product_shot(photo, (48, 64))
    red = (shot[..., 0] > 150) & (shot[..., 1] < 100)
    assert red.any(axis=0).sum() >= 40  # it fills the half's width, not a quarter of it
    assert product_box(np.full((5, 5, 3), 255, np.uint8)) == (0, 0, 5, 5)


def test_the_frame_is_3_by_4_around_the_garment_and_face_and_inside_the_render() -> None:
    paint = box_mask(200, 300, (100, 80, 180, 160))
    keep = box_mask(200, 300, (120, 40, 160, 70))
    x0, y0, x1, y1 = frame_box(paint, keep)
    assert (x1 - x0) * 4 == (y1 - y0) * 3 or abs((x1 - x0) / (y1 - y0) - 0.75) < 0.01
    assert x0 <= 100 and x1 >= 180 and y0 <= 40 and y1 >= 160  # holds both masks, with a margin
    assert 0 <= x0 and x1 <= 300 and 0 <= y0 and y1 <= 200  # moved inside where it fits
    wide = box_mask(100, 400, (20, 10, 380, 90))  # wider than 3:4: the frame is taller than the render
    wx0, wy0, wx1, wy1 = frame_box(wide, np.zeros_like(wide))
    assert wy0 < 0 and wy1 > 100 and abs((wy0 + wy1) / 2 - 50) <= 1  # centred, padded when cropped
    assert frame_box(np.zeros((40, 30)), np.zeros((40, 30))) == (0, 0, 30, 40)  # nothing: the whole render


def test_crop_pads_past_the_render_and_paste_puts_it_back() -> None:
    image = rng_image(4, 20, 30)
    box = (-5, 10, 25, 50)
    part = crop(image, box, 255)
    assert part.shape == (40, 30, 3) and (part[:, :5] == 255).all() and (part[10:] == 255).all()
    assert np.array_equal(part[:10, 5:], image[10:20, 0:25])
    assert np.array_equal(paste(np.zeros_like(image), part, box)[10:20, 0:25], image[10:20, 0:25])


def test_the_repainted_region_grows_as_catvtons_agnostic_mask() -> None:
    region = np.zeros((400, 300), bool)
    region[100:300, 60:120] = True  # two arms of a U: the hull fills the gap between them
    region[100:300, 180:240] = True
    region[260:300, 60:240] = True
    grown = agnostic_mask(region, side=400)  # blur kernel 17, cut at 25/255; dilation 1 (400 // 250, odd)
    assert grown[150, 150] and region[150, 150] == 0  # inside the hull
    assert grown[200, 56] and not grown[200, 40]  # grown by about 1 % of the side, not more
    assert grown[region].all()
    assert not agnostic_mask(np.zeros((10, 10)), side=10).any()
    paint = box_mask(200, 150, (40, 60, 110, 180))
    keep = box_mask(200, 150, (50, 20, 100, 64))
    mask = agnostic_region(paint, keep)  # at the scale of the 3:4 frame (about 190 px tall): grown by ~2 px
    assert mask.dtype == np.float32 and set(np.unique(mask)) == {0.0, 1.0}
    assert mask[100, 38] == 1 and mask[100, 30] == 0 and not mask[keep > 0].any()


def test_diptych_puts_the_garment_left_and_the_frame_right_with_the_mask_on_the_right_only() -> None:
    req = request(size=(44, 60), paint=(10, 20, 34, 50), keep=(14, 0, 30, 16))
    (dip,) = diptychs([req], multiple=4, max_side=64)
    assert dip.image.shape == (64, 96, 3) and dip.mask.shape == (64, 96) and dip.size == (96, 64)
    assert np.array_equal(dip.image[:, :48], product_shot(req.garment, (48, 64)))
    assert not dip.mask[:, :48].any()  # the garment half is never repainted
    box, model_mask = request_frame(req)
    assert model_mask[req.paint_mask > 0][~(req.keep_mask[req.paint_mask > 0] > 0)].all()  # the paint mask, grown
    right = dip.mask[:, 48:]
    assert set(np.unique(right)) == {0.0, 1.0}
    scale = 64 / (box[3] - box[1])
    assert right[int((35 - box[1]) * scale), int((22 - box[0]) * scale)] == 1  # inside the paint mask
    assert right[int((5 - box[1]) * scale), int((22 - box[0]) * scale)] == 0  # the keep mask
    assert dip.prompt == f"{TRAINING_CAPTION} Snug across the chest." and dip.seed == req.seed


def test_the_prompt_is_catvtons_training_caption_then_the_cues() -> None:
    assert TRAINING_CAPTION.startswith("The pair of images highlights a clothing and its styling on a model")
    assert "[IMAGE1] Detailed product shot of a clothing[IMAGE2] The same cloth is worn by a model" in TRAINING_CAPTION
    assert tryon_prompt("loose at the waist, regular fit.") == f"{TRAINING_CAPTION} Loose at the waist, regular fit."
    assert tryon_prompt("  ") == TRAINING_CAPTION


def test_a_request_whose_masks_do_not_match_its_render_is_refused() -> None:
    req = request()
    bad = TryOnRequest(req.render, req.paint_mask[:10], req.keep_mask, req.garment, req.prompt, req.seed)
    with pytest.raises(ValueError, match="paint_mask"):
        diptych(bad, (48, 64))


# ---- postprocess -------------------------------------------------------------------------------------------------


def test_composite_keeps_the_render_exactly_in_the_keep_mask_and_outside_the_paint_mask() -> None:
    render, generated = rng_image(1, 40, 40), rng_image(2, 40, 40)
    paint = box_mask(40, 40, (5, 5, 35, 35))
    keep = box_mask(40, 40, (10, 0, 30, 12))
    out = composite(render, generated, paint, keep, feather_px=3)
    assert out.dtype == np.uint8 and out.shape == render.shape
    assert np.array_equal(out[keep > 0], render[keep > 0])
    assert np.array_equal(out[paint == 0], render[paint == 0])
    assert np.array_equal(out[15:25, 15:25], generated[15:25, 15:25])  # deep inside: the generated pixels
    edge = feather(paint, 3)
    assert 0 < edge[20, 5] < 1 and edge[20, 20] == 1 and edge[20, 4] == 0


def test_output_is_the_right_half_pasted_over_the_frame() -> None:
    req = request(size=(44, 60), paint=(10, 20, 34, 50), keep=(14, 0, 30, 16))
    generated = np.concatenate([np.zeros((64, 48, 3), np.uint8), np.full((64, 48, 3), 7, np.uint8)], axis=1)
    out = tryon_output(req, generated)
    assert out.shape == req.render.shape
    assert (out[30:40, 15:30] == 7).all()  # from the right half (pasted over the frame), not the garment half
    assert np.array_equal(out[req.keep_mask > 0], req.render[req.keep_mask > 0])
    assert np.array_equal(out[req.paint_mask == 0], req.render[req.paint_mask == 0])


# ---- the adapter, end to end on a tiny random-weight FLUX Fill ---------------------------------------------------


@pytest.fixture(scope="session")
def tiny_flux_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("diffusers", reason="the gpu extra (diffusers, transformers) is not installed")
    pytest.importorskip("transformers", reason="the gpu extra (diffusers, transformers) is not installed")

    return tiny_flux_fill(tmp_path_factory.mktemp("tiny-flux-fill"))


@pytest.fixture(scope="module")
def painter(tiny_flux_path: Path) -> DiffusersTryOnPainter:
    return DiffusersTryOnPainter(tiny_flux_path, device=DEVICE, steps=2, max_side=SIDE)


def test_the_adapter_is_a_try_on_painter_that_loads_once_from_local_files(painter: DiffusersTryOnPainter) -> None:
    import torch

    checked: TryOnPainter = painter
    assert isinstance(checked, TryOnPainter)
    assert painter.name == "flux-fill-tryon" and "diffusers" in painter.version
    pipe = painter.load()
    assert pipe is painter.load()
    assert pipe.transformer.dtype == (torch.bfloat16 if DEVICE == "cuda" else torch.float32)
    assert pipe.device.type == DEVICE and pipe.transformer.device.type == DEVICE


def test_the_pipeline_loads_onto_its_device_directly_with_vae_slicing(painter: DiffusersTryOnPainter) -> None:
    pipe = painter.load()
    assert pipe.hf_device_map == DEVICE  # diffusers' device_map: the weights go straight to the device
    assert pipe.vae.use_slicing and not pipe.vae.use_tiling


def test_a_prebuilt_pipeline_paints_as_the_loaded_one_and_takes_a_strength(painter: DiffusersTryOnPainter) -> None:
    prebuilt = DiffusersTryOnPainter.from_pipeline(painter.load(), steps=2, max_side=SIDE)
    (loaded,) = painter.repaint([request(3)])
    assert np.array_equal(prebuilt.repaint([request(3)])[0], loaded)
    (partial,) = DiffusersTryOnPainter.from_pipeline(painter.load(), steps=2, max_side=SIDE,
                                                     strength=0.5).repaint([request(3)])
    assert partial.shape == loaded.shape and not np.array_equal(partial, loaded)  # starts from the noised render
    with pytest.raises(ValueError, match="strength"):
        DiffusersTryOnPainter(Path("unused"), strength=0.0)


def test_a_missing_weights_folder_fails_clearly_without_downloading(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        DiffusersTryOnPainter(tmp_path / "nothing", device=DEVICE).load()


def test_the_adapter_repaints_a_batch_end_to_end(painter: DiffusersTryOnPainter) -> None:
    requests = [request(0), request(1, prompt="loose at the waist"), request(2, keep=None)]
    outputs = painter.repaint(requests)
    assert len(outputs) == 3 and painter.batches[-1] == 3  # one pipeline call for the batch
    for req, out in zip(requests, outputs, strict=True):
        assert out.shape == req.render.shape and out.dtype == np.uint8
        inside = (req.paint_mask > 0) & (req.keep_mask == 0)
        assert (out[inside] != req.render[inside]).any(axis=1).mean() > 0.5  # repainted
        assert np.array_equal(out[req.keep_mask > 0], req.render[req.keep_mask > 0])
        assert np.array_equal(out[req.paint_mask == 0], req.render[req.paint_mask == 0])


def test_the_same_seed_gives_the_same_output_and_another_seed_another(painter: DiffusersTryOnPainter) -> None:
    first = painter.repaint([request(0), request(1)])
    again = painter.repaint([request(0), request(1)])
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    reseeded = request(0)
    reseeded = TryOnRequest(reseeded.render, reseeded.paint_mask, reseeded.keep_mask, reseeded.garment,
                            reseeded.prompt, seed=1000)
    (other,) = painter.repaint([reseeded])
    assert not np.array_equal(other, first[0])
    (alone,) = painter.repaint([request(1)])  # a request's result does not depend on its batch (to rounding)
    assert np.abs(alone.astype(int) - first[1].astype(int)).max() <= 1


class OutOfMemoryAbove:
    """A pipeline that runs out of GPU memory on batches larger than `most` (as torch raises it), else paints."""

    def __init__(self, pipe: object, most: int) -> None:
        self.pipe, self.most = pipe, most
        self.device = pipe.device  # type: ignore[attr-defined]
        self.vae_scale_factor = pipe.vae_scale_factor  # type: ignore[attr-defined]

    def __call__(self, **kwargs: object) -> object:
        import torch

        if len(kwargs["prompt"]) > self.most:  # type: ignore[arg-type]
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.pipe(**kwargs)  # type: ignore[operator]


def test_a_batch_the_gpu_cannot_hold_is_split_in_halves_until_it_fits(painter: DiffusersTryOnPainter) -> None:
    requests = [request(i) for i in range(5)]
    whole = painter.repaint(requests)
    split = DiffusersTryOnPainter.from_pipeline(OutOfMemoryAbove(painter.load(), most=2), steps=2, max_side=SIDE)
    parts = split.repaint(requests)
    assert split.batches == [5, 2, 3, 1, 2]  # 5 does not fit: 2 runs, 3 does not fit: 1 and 2 run
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 1 for a, b in zip(whole, parts, strict=True))
    hopeless = DiffusersTryOnPainter.from_pipeline(OutOfMemoryAbove(painter.load(), most=0), steps=2, max_side=SIDE)
    with pytest.raises(RetryableError, match="out of memory on a single view"):
        hopeless.repaint(requests[:2])


# ---- requests from the rendered views ----------------------------------------------------------------------------


CAMERA = Camera(focal_px=80.0, cx=32.0, cy=32.0, rotation=np.eye(3), translation=np.array([0.0, 0.0, 3.0]),
                image_size=(64, 64))


def views(count: int = len(ANGLES_DEG), size: int = 64) -> list[View]:
    return [View(angle_deg=a, camera=CAMERA, image=rng_image(a, size, size), mask=np.ones((size, size), bool),
                 seconds=0.0) for a in ANGLES_DEG[:count]]


def test_a_request_paints_the_grown_garment_region_and_keeps_the_enlarged_face_box() -> None:
    view = views(1)[0]
    region = box_mask(64, 64, (20, 24, 44, 56))
    garment = np.full((30, 20, 3), 255, np.uint8)
    req = tryon_request(view, region, garment, ["snug across the chest", "regular fit overall"],
                        face_box=(26, 4, 38, 16), seed=7)
    assert req.render is view.image and req.garment is garment and req.seed == 7
    assert req.prompt == "snug across the chest, regular fit overall"
    assert req.paint_mask[24:56, 20:44].all() and req.paint_mask[40, 19] == 1 and req.paint_mask[40, 5] == 0
    assert np.array_equal(req.keep_mask, face_keep_mask((64, 64), (26, 4, 38, 16)))
    assert req.keep_mask[10, 23] == 1 and req.keep_mask[10, 41] == 1 and req.keep_mask[30, 32] == 0  # 35 % larger
    no_face = tryon_request(view, region, garment, [], face_box=None, seed=0)
    assert not no_face.keep_mask.any() and no_face.prompt == ""


def test_the_garment_cutout_goes_on_white() -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 30, 30, 255)
    rgba[0, 1] = (0, 0, 0, 128)
    assert garment_on_white(rgba).tolist() == [[[200, 30, 30], [127, 127, 127]], [[255, 255, 255]] * 2]


def test_the_views_garment_regions_are_grown_as_catvtons_masks_and_the_photos_is_not() -> None:
    region = np.zeros((64, 64), np.float32)
    region[24:56, 14:22] = 1.0  # a U: two sleeves and a hem, the gap between them the body
    region[24:56, 42:50] = 1.0
    region[48:56, 14:50] = 1.0
    faces: FaceEmbedder = FakeFaceEmbedder([fake_face((26, 4, 38, 16), identity=1)])
    (req,) = tryon_requests(faces, views(1), [region], np.full((30, 20, 3), 255, np.uint8), [])
    assert req.paint_mask[30, 32] == 1  # the hull: the outline no longer shows the garment's shape
    assert np.array_equal(req.paint_mask, agnostic_region(region, req.keep_mask))
    photo = tryon_request(views(1)[0], region, np.full((30, 20, 3), 255, np.uint8), [], face_box=None, seed=0)
    assert photo.paint_mask[30, 32] == 0  # a region given as it is (the photo's agnostic mask): only dilated


def test_requests_for_the_turntable_find_each_face_and_number_the_seeds() -> None:
    faces: FaceEmbedder = FakeFaceEmbedder([fake_face((26, 4, 38, 16), identity=1)])
    shown = views()
    regions = [box_mask(64, 64, (20, 24, 44, 56))] * len(shown)
    reqs = tryon_requests(faces, shown, regions, np.full((30, 20, 3), 255, np.uint8), ["loose"], seed=10)
    assert [r.seed for r in reqs] == list(range(10, 18))
    assert {r.category for r in reqs} == {None}  # no category given: the painter guesses
    told = tryon_requests(faces, shown[:2], regions[:2], np.full((30, 20, 3), 255, np.uint8), [], category="lower")
    assert [r.category for r in told] == ["lower", "lower"]
    assert all(r.keep_mask[10, 32] == 1 for r in reqs)
    with pytest.raises(ValueError, match="garment regions"):
        tryon_requests(faces, shown, regions[:3], np.full((30, 20, 3), 255, np.uint8), ["loose"])


# ---- repaint with identity: retries on fakes ---------------------------------------------------------------------


REFERENCE = np.eye(128, dtype=np.float32)[0]
SIDEWAYS = np.eye(128, dtype=np.float32)[1]
BANK = FaceBank(backend="fake-faces", threshold=0.6,
                references=(FaceReference(source="person", box=(0, 0, 10, 10), embedding=tuple(REFERENCE.tolist())),))


class SeedStampPainter:
    """Returns each render with its request's seed written into the top-left pixel; records every batch."""

    name = "seed-stamp"
    version = "1"

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def repaint(self, requests: list[TryOnRequest]) -> list[np.ndarray]:
        self.batches.append([r.seed for r in requests])
        out = []
        for r in requests:
            image = r.render.copy()
            image[0, 0] = (r.seed // 256, r.seed % 256, 0)
            out.append(image)
        return out


class SeedFaces:
    """A face whose distance to REFERENCE is `distances[seed]` (read back from the stamped pixel); no face for a
    seed mapped to None; 0.1 for seeds not listed."""

    name = "seed-faces"
    version = "1"
    threshold = 0.6

    def __init__(self, distances: dict[int, float | None]) -> None:
        self.distances = distances

    def faces(self, rgb: np.ndarray) -> list[Face]:
        seed = int(rgb[0, 0, 0]) * 256 + int(rgb[0, 0, 1])
        distance = self.distances.get(seed, 0.1)
        if distance is None:
            return []
        # |REFERENCE - e| = distance for e = a REFERENCE + b SIDEWAYS with a = 1 - d^2 / 2, a^2 + b^2 = 1
        a = 1 - distance**2 / 2
        embedding = a * REFERENCE + np.sqrt(max(0.0, 1 - a * a)) * SIDEWAYS
        return [Face(box=(24, 2, 40, 18), landmarks=np.zeros((5, 2), np.float32), embedding=embedding, score=0.9)]


def turntable_requests(count: int = len(ANGLES_DEG)) -> tuple[list[View], list[TryOnRequest]]:
    shown = views(count)
    regions = [box_mask(64, 64, (20, 24, 44, 56))] * count
    return shown, tryon_requests(FakeFaceEmbedder(), shown, regions, np.full((8, 8, 3), 255, np.uint8), ["loose"])


def test_only_mismatching_angles_are_retried_with_new_seeds_and_the_retries_are_bounded() -> None:
    painter = SeedStampPainter()
    checked: TryOnPainter = painter
    faces: FaceEmbedder = SeedFaces({
        1: 0.9, 1 + RETRY_SEED_STEP: 0.7, 1 + 2 * RETRY_SEED_STEP: 0.3,  # 045 fails twice, then matches
        7: 0.9, 7 + RETRY_SEED_STEP: 0.8, 7 + 2 * RETRY_SEED_STEP: 0.95,  # 315 never matches: best is the second
        0: None,  # 000 shows no face: nothing to retry
        2: 0.9, 6: 0.9,  # profiles at 090 and 270 would "mismatch": not compared, so never repainted again
    })
    shown, reqs = turntable_requests()
    result = repaint_with_identity(checked, faces, BANK, shown, reqs, max_tries=3)
    assert painter.batches == [list(range(8)), [1001, 1007], [2001, 2007]]
    assert result.tries == [1, 3, 1, 1, 1, 1, 1, 3]
    assert result.seeds == [0, 2001, 2, 3, 4, 5, 6, 1007]
    statuses = [i.status for i in result.identity]
    assert statuses[0] == "not visible" and statuses[1] == "match" and statuses[7] == "mismatch"
    assert all(s.startswith("skipped: the view turns") for s in statuses[2:7])
    assert result.distances[1] == pytest.approx(0.3, abs=1e-3) and result.distances[7] == pytest.approx(0.8, abs=1e-3)
    assert [i.angle_deg for i in result.identity] == list(ANGLES_DEG)
    assert result.images[7][0, 0].tolist() == [1007 // 256, 1007 % 256, 0]  # the kept image is the best attempt


def test_no_retry_without_a_face_reference_or_with_a_single_try() -> None:
    shown, reqs = turntable_requests()
    painter = SeedStampPainter()
    unchecked = FaceBank(backend="fake-faces", threshold=0.6, skipped_reason="no face in the person photo")
    result = repaint_with_identity(painter, SeedFaces({s: 0.9 for s in range(8)}), unchecked, shown, reqs)
    assert painter.batches == [list(range(8))] and result.tries == [1] * 8
    assert all(i.status.startswith("skipped") for i in result.identity)
    painter = SeedStampPainter()
    result = repaint_with_identity(painter, SeedFaces({s: 0.9 for s in range(8)}), BANK, shown, reqs, max_tries=1)
    assert painter.batches == [list(range(8))]
    assert [i.status for i in result.identity if not i.status.startswith("skipped")] == ["mismatch"] * 3
    with pytest.raises(ValueError, match="max_tries"):
        repaint_with_identity(painter, SeedFaces({}), BANK, shown, reqs, max_tries=0)


def test_the_identity_loop_runs_on_the_real_adapter(painter: DiffusersTryOnPainter) -> None:
    """Every face mismatches (the fake sees another person): of 3 angles, 000 and 045 are each tried exactly
    max_tries times; 090 turns too far for faces to be compared, so it is painted once."""
    shown, reqs = turntable_requests(3)
    faces: FaceEmbedder = FakeFaceEmbedder([fake_face((24, 2, 40, 18), identity=2)])
    result = repaint_with_identity(painter, faces, BANK, shown, reqs, max_tries=2)
    assert result.tries == [2, 2, 1] and result.seeds == [0, 1, 2]  # ties keep the first attempt
    assert all(image.shape == (64, 64, 3) for image in result.images)


def test_side_and_back_views_say_so_and_that_the_photo_is_the_front() -> None:
    assert [view_cue(a) for a in (0, 45, 315)] == [None] * 3
    assert view_cue(90) == view_cue(270) and "side" in (view_cue(90) or "")
    back = view_cue(180) or ""
    assert view_cue(135) == view_cue(225) == back and "back" in back and "shows the garment's front" in back
    assert "back photo" not in back  # the wardrobe has no photo of the back: nothing claims one
    region = box_mask(64, 64, (20, 24, 44, 56))
    garment = np.full((30, 20, 3), 255, np.uint8)
    behind = View(angle_deg=180, camera=CAMERA, image=rng_image(1, 64, 64), mask=np.ones((64, 64), bool), seconds=0.0)
    req = tryon_request(behind, region, garment, ["snug across the chest"], face_box=None, seed=0)
    assert req.prompt == f"{back}; snug across the chest" and req.garment is garment
