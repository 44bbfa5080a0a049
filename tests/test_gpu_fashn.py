"""The commercial-safe try-on painter (FASHN VTON v1.5, pipeline/backends/gpu/fashn_tryon.py), its network port
(fashn_mmdit.py) and its pose condition (dwpose.py).

Pre- and post-processing and DWPose's decoding are plain numpy, tested on their own. The network is the released
architecture: its full-size layout is checked on the meta device (no memory), and a tiny random-weight copy
(tests/tiny_fashn.py) runs the whole painter at the real 576x864 on CPU, loaded from a verified weights folder by
`PlannedBackends` under commercial-safe, as the real one loads on a GPU.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.backends.gpu.dwpose import (
    DWPose,
    PersonPose,
    crop_frame,
    decode_grid,
    detector_input,
    draw_pose_gray,
    keypoints_from_simcc,
    openpose_order,
    people_boxes,
    person_pose,
    pose_input,
)
from pipeline.backends.gpu.fashn_mmdit import ModelShape, TryOnModel, load_tryon_model, shape_of
from pipeline.backends.gpu.fashn_tryon import (
    MODEL_SIZE,
    FashnTryOnPainter,
    Placement,
    fashn_inputs,
    fashn_output,
    fit_size,
    garment_category,
    pose_resolution,
    request_category,
    resize_pad,
    rf_schedule,
    unpad,
)
from pipeline.backends.protocols import TryOnPainter, TryOnRequest
from pipeline.backends.table import BACKENDS
from tiny_fashn import CROP_KEYPOINTS, PERSON_BOX, POSE_INPUT, tiny_shape, write_tiny_fashn

Box = tuple[int, int, int, int]


def box_mask(height: int, width: int, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = box
    mask = np.zeros((height, width), dtype=np.float32)
    mask[y0:y1, x0:x1] = 1.0
    return mask


def request(seed: int = 0, size: tuple[int, int] = (512, 768), paint: Box = (150, 200, 360, 420),
            keep: Box | None = (200, 60, 310, 170)) -> TryOnRequest:
    width, height = size
    rng = np.random.default_rng(100 + seed)
    return TryOnRequest(render=rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
                        paint_mask=box_mask(height, width, paint),
                        keep_mask=box_mask(height, width, keep) if keep else np.zeros((height, width), np.float32),
                        garment=np.full((300, 240, 3), (200, 30, 30), dtype=np.uint8), prompt="snug", seed=seed)


def standing(shoulders: float = 0.25, hips: float = 0.5) -> PersonPose:
    """A pose whose shoulders (2, 5) and hips (8, 11) sit at those heights; nothing else visible."""
    pose = PersonPose.nobody()
    for point, y in ((2, shoulders), (5, shoulders), (8, hips), (11, hips)):
        pose.body[point] = (0.5, y)
        pose.body_visible[point] = True
    return pose


# ---- preprocess --------------------------------------------------------------------------------------------------


def test_fit_size_keeps_the_aspect_truncates_and_can_refuse_to_grow() -> None:
    assert fit_size(512, 768, (576, 864)) == (576, 864)
    assert fit_size(700, 1200, (576, 864)) == (504, 864)
    assert fit_size(1000, 1000, (576, 864)) == (576, 576)
    assert fit_size(300, 200, (864, 864), upsample=False) == (300, 200)
    assert fit_size(1000, 2000, (864, 864), upsample=False) == (432, 864)


def test_pose_resolution_only_shrinks() -> None:
    assert pose_resolution(np.zeros((768, 512, 3), np.uint8)).shape == (768, 512, 3)
    assert pose_resolution(np.zeros((2000, 1000, 3), np.uint8)).shape == (864, 432, 3)


def test_resize_pad_centres_the_image_on_black_and_unpad_undoes_it() -> None:
    image = np.full((1200, 700, 3), 200, np.uint8)
    padded, placement = resize_pad(image)
    assert padded.shape == (MODEL_SIZE[1], MODEL_SIZE[0], 3)
    assert placement == Placement(size=(504, 864), pad=(36, 0, 36, 0))
    assert (padded[:, :36] == 0).all() and (padded[:, -36:] == 0).all() and (padded[:, 36:-36] == 200).all()
    assert unpad(padded, placement).shape == (864, 504, 3)
    pose = np.zeros((600, 400), np.uint8)
    pose[300, 200] = 77
    drawn, _ = resize_pad(pose, nearest=True)
    assert drawn.shape == (864, 576) and set(np.unique(drawn)) == {0, 77}  # nearest: no new grey levels


def test_the_category_comes_from_where_the_paint_mask_sits_on_the_torso() -> None:
    pose = standing(shoulders=0.25, hips=0.5)  # a torso of 0.25 of the image
    mask = lambda top, bottom: box_mask(100, 50, (0, top, 50, bottom))  # noqa: E731
    assert garment_category(pose, mask(22, 55)) == "tops"  # collar to just past the hips
    assert garment_category(pose, mask(20, 60)) == "tops"  # a long top (1.4 torsos)
    assert garment_category(pose, mask(45, 95)) == "bottoms"  # from the waist down
    assert garment_category(pose, mask(22, 80)) == "one-pieces"  # a dress to the knees
    assert garment_category(pose, np.zeros((100, 50), np.float32)) == "tops"
    nobody = PersonPose.nobody()  # no torso seen: the image's height decides
    assert [garment_category(nobody, mask(*rows)) for rows in ((20, 60), (50, 95), (20, 80))] == \
           ["tops", "bottoms", "one-pieces"]


def test_the_wardrobes_category_beats_where_the_mask_sits() -> None:
    pose = standing(shoulders=0.25, hips=0.5)
    high = box_mask(100, 50, (0, 22, 50, 55))  # sits where a top would
    asked = lambda category: replace(request(), paint_mask=high, category=category)  # noqa: E731
    assert request_category(asked(None), pose) == "tops"  # no category given: guessed from the mask
    assert request_category(asked("lower"), pose) == "bottoms"  # a high-waisted skirt is still bottoms
    assert request_category(asked("full"), pose) == "one-pieces"
    assert request_category(asked("upper"), pose) == "tops"
    with pytest.raises(ValueError, match="garment category 'hat'"):
        request_category(asked("hat"), pose)


def test_the_schedule_is_fashns_shifted_rectified_flow_schedule() -> None:
    # the values fashn_vton.utils.sampling.get_rf_schedule(4, mu=1.5) returns
    assert rf_schedule(4) == pytest.approx([0.0, 0.06922778487205505, 0.18242551386356354, 0.4009789526462555, 1.0])
    times = rf_schedule(30)
    assert len(times) == 31 and times[0] == 0.0 and times[-1] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(times, times[1:], strict=False))


def test_fashn_inputs_are_the_render_its_pose_and_the_garment_at_the_models_size() -> None:
    seen: list[tuple[int, ...]] = []

    def find_pose(bgr: np.ndarray) -> PersonPose:
        seen.append(bgr.shape)
        return standing(0.25, 0.5)

    req = request(size=(700, 1200), paint=(200, 280, 500, 620))
    inputs = fashn_inputs(req, find_pose)
    assert seen == [(864, 504, 3)]  # DWPose sees the render shrunk to fit 864
    assert inputs.person.shape == (864, 576, 3) and inputs.garment.shape == (864, 576, 3)
    assert inputs.person_pose.shape == (864, 576) and inputs.person_pose.dtype == np.uint8
    assert inputs.person_pose.any()  # the shoulders-to-hips limbs are drawn
    assert inputs.placement == Placement(size=(504, 864), pad=(36, 0, 36, 0))
    assert inputs.category == "tops" and inputs.seed == req.seed
    with pytest.raises(ValueError, match="paint_mask"):
        fashn_inputs(TryOnRequest(req.render, req.paint_mask[:10], req.keep_mask, req.garment, "", 0), find_pose)


# ---- postprocess -------------------------------------------------------------------------------------------------


def test_the_output_drops_the_padding_and_keeps_the_render_outside_the_paint_mask_and_in_the_keep_mask() -> None:
    req = request(size=(700, 1200), paint=(100, 300, 600, 900), keep=(250, 300, 450, 400))
    generated = np.zeros((864, 576, 3), np.uint8)
    generated[:, 36:-36] = 90  # the person; the padding stays black
    out = fashn_output(req, generated, Placement(size=(504, 864), pad=(36, 0, 36, 0)))
    assert out.shape == req.render.shape and out.dtype == np.uint8
    paint, keep = req.paint_mask > 0, req.keep_mask > 0
    assert np.array_equal(out[~paint], req.render[~paint]) and np.array_equal(out[keep], req.render[keep])
    assert (out[500:800, 150:550] == 90).all()  # deep inside the paint mask: the generated person, no black bars


# ---- DWPose ------------------------------------------------------------------------------------------------------


def test_the_detector_input_is_letterboxed_top_left_on_grey() -> None:
    image, ratio = detector_input(np.full((768, 512, 3), 10, np.uint8))
    assert image.shape == (1, 3, 640, 640) and image.dtype == np.float32 and ratio == pytest.approx(640 / 768)
    assert (image[0, :, :, :426] == 10).all() and (image[0, :, :, 427:] == 114).all()


def test_people_boxes_decode_the_grid_keep_people_and_suppress_duplicates() -> None:
    raw = np.zeros((8400, 85), np.float32)
    first32 = 80 * 80 + 40 * 40
    raw[first32 + 9 * 20 + 6, :6] = (0.5, 0.5, np.log(5.0), np.log(12.0), 0.95, 0.9)  # cell (6, 9): a person
    raw[first32 + 9 * 20 + 7, :6] = (0.0, 0.5, np.log(5.0), np.log(12.0), 0.9, 0.8)  # overlapping, weaker
    raw[first32 + 2 * 20 + 2, :7] = (0.5, 0.5, 0.0, 0.0, 0.95, 0.01, 0.99)  # a confident non-person
    raw[first32 + 1 * 20 + 15, :6] = (0.5, 0.5, 0.0, 0.0, 0.5, 0.5)  # a person at 0.25: too weak
    decoded = decode_grid(raw)
    assert decoded[first32 + 9 * 20 + 6, :4] == pytest.approx((6.5 * 32, 9.5 * 32, 160, 384))
    boxes = people_boxes(raw, ratio=0.5)
    assert boxes.shape == (1, 4)
    assert boxes[0] == pytest.approx(np.array([128, 112, 288, 496]) / 0.5)


def test_simcc_keypoints_map_back_through_the_crop() -> None:
    box = np.array([100.0, 50.0, 300.0, 550.0])
    centre, scale = crop_frame(box, POSE_INPUT)
    assert centre == pytest.approx((200, 300)) and scale[1] == pytest.approx(625) and scale[0] / scale[1] == 0.75
    simcc_x, simcc_y = np.zeros((1, 2, 576)), np.zeros((1, 2, 768))
    simcc_x[0, 0, 288], simcc_y[0, 0, 384] = 0.9, 0.8  # the crop's centre
    simcc_x[0, 1, 0], simcc_y[0, 1, 0] = 0.9, 0.0  # no response in y: not found
    points, scores = keypoints_from_simcc(simcc_x, simcc_y, POSE_INPUT, centre, scale)
    assert points[0] == pytest.approx(centre) and scores[0] == pytest.approx(0.8) and scores[1] == 0.0
    crop, _, _ = pose_input(np.zeros((600, 400, 3), np.uint8), box, POSE_INPUT)
    assert crop.shape == (1, 3, 384, 288) and crop.dtype == np.float32
    assert crop[0, 0, 0, 0] == pytest.approx(-123.675 / 58.395)  # black, normalised


def test_openpose_order_inserts_the_neck_and_reorders_the_body() -> None:
    keypoints = np.zeros((1, 133, 2))
    keypoints[0, :17, 0] = np.arange(17)  # x = the COCO index
    keypoints[0, 5, 1], keypoints[0, 6, 1] = 10, 20
    scores = np.full((1, 133), 0.9)
    points, ordered = openpose_order(keypoints, scores)
    assert points.shape == (1, 134, 2)
    assert list(points[0, :18, 0]) == [0, 5.5, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]
    assert points[0, 1, 1] == 15 and ordered[0, 1] == 1  # the neck: the shoulders' mean, seen
    scores[0, 6] = 0.2
    assert openpose_order(keypoints, scores)[1][0, 1] == 0


def test_person_pose_hides_what_is_not_seen_and_picks_the_most_prominent() -> None:
    keypoints = np.full((2, 134, 2), 50.0)
    keypoints[1, 1:14] = np.linspace(10, 90, 13)[:, None]  # person 1 spans more of the image
    scores = np.full((2, 134), 0.9)
    scores[1, 3] = scores[1, 100] = 0.1
    pose = person_pose(keypoints, scores, (100, 200))
    assert not pose.body_visible[3] and (pose.body[3] == -1).all() and (pose.hands[0, 100 - 92] == -1).all()
    assert pose.body[1] == pytest.approx((0.1, 0.05)) and pose.face.shape == (68, 2)


def test_draw_pose_gray_draws_nothing_for_nobody_and_fashns_greys_for_a_person() -> None:
    assert not draw_pose_gray(PersonPose.nobody(), 80, 60).any()
    pose = PersonPose.nobody()
    for point, xy in ((1, (0.5, 0.2)), (2, (0.3, 0.2))):  # the neck and the right shoulder: limb 1 (2-3)
        pose.body[point], pose.body_visible[point] = xy, True
    canvas = draw_pose_gray(pose, 100, 100)
    assert canvas[20, 50] == int(20 * 1.3) and canvas[20, 30] == int(20 * 1.3)  # the joints: limb 1's grey x 1.3
    assert canvas[20, 40] == int(20 * 0.6)  # the limb between them, at 0.6 of its grey
    assert canvas[60, 50] == 0


def test_dwpose_runs_both_onnx_models_of_a_folder(tmp_path: Path) -> None:
    folder = write_tiny_fashn(tmp_path / "fashn") / "dwpose"
    find = DWPose(folder, ["CPUExecutionProvider"])
    assert find.input_size == POSE_INPUT
    pose = find(np.full((768, 512, 3), 128, np.uint8))
    assert pose.body_visible.all() and (pose.hands > 0).all() and (pose.face > 0).all()
    ratio = 640 / 768
    box = np.array(PERSON_BOX) / ratio
    centre, scale = crop_frame(box, POSE_INPUT)
    nose = CROP_KEYPOINTS[0] / np.array(POSE_INPUT) * scale + centre - scale / 2
    assert pose.body[0] == pytest.approx(nose / (512, 768), abs=2e-3)
    with pytest.raises(FileNotFoundError, match="yolox_l.onnx"):
        DWPose(tmp_path / "nothing")


# ---- the network ---------------------------------------------------------------------------------------------


def test_the_port_has_the_released_models_layout() -> None:
    with torch.device("meta"):
        model = TryOnModel()
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 971_813_808  # the model card's "972M"
    assert shape_of(state) == ModelShape() and "patch_mixer_token" in state
    assert state["x_embedder.proj.weight"].shape == (1280, 7, 12, 12)  # noisy image + person + its pose
    assert state["garment_embedder.proj.weight"].shape == (1280, 4, 12, 12)  # garment + its pose


def test_the_unconditioned_half_ignores_the_conditions() -> None:
    torch.manual_seed(0)
    model = TryOnModel(tiny_shape()).eval()
    h, w = 864, 576
    x, t = torch.randn(2, 3, h, w), torch.rand(2)
    conditions = {"ca_images": torch.randn(2, 3, h, w), "person_poses": torch.randn(2, 1, h, w),
                  "garment_images": torch.randn(2, 3, h, w), "garment_poses": torch.randn(2, 1, h, w),
                  "garment_categories": torch.tensor([1, 3])}
    with torch.no_grad():
        v_c, v_u = model.forward_for_cfg(x, t, **conditions)
        other_c, other_u = model.forward_for_cfg(x, t, **{**conditions, "ca_images": torch.randn(2, 3, h, w)})
    assert v_c.shape == v_u.shape == (2, 3, h, w)
    assert torch.equal(v_u, other_u) and not torch.equal(v_c, other_c)


def test_a_checkpoint_that_does_not_fit_the_port_is_refused_naming_the_file(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    path = write_tiny_fashn(tmp_path / "fashn") / "model.safetensors"
    model = load_tryon_model(path, "cpu", torch.float32)
    assert next(model.parameters()).dtype == torch.float32 and model.shape == tiny_shape()
    state = load_file(str(path))
    del state["final_layer.linear.bias"]
    save_file(state, str(tmp_path / "broken.safetensors"))
    with pytest.raises(ValueError, match="broken.safetensors is not a FASHN VTON v1.5 checkpoint"):
        load_tryon_model(tmp_path / "broken.safetensors", "cpu", torch.float32)


# ---- the painter, end to end on the tiny folder ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_fashn(tmp_path_factory.mktemp("tiny") / "fashn")


@pytest.fixture(scope="module")
def painter(tiny_folder: Path) -> FashnTryOnPainter:
    return FashnTryOnPainter(tiny_folder, device="cpu", steps=2, providers=["CPUExecutionProvider"])


def test_the_painter_is_a_try_on_painter_that_loads_once(painter: FashnTryOnPainter) -> None:
    checked: TryOnPainter = painter
    assert isinstance(checked, TryOnPainter)
    assert painter.name == "fashn-vton-1.5" and "torch" in painter.version and "onnxruntime" in painter.version
    model, _ = painter.load()
    assert model is painter.load()[0] and next(model.parameters()).dtype == torch.float32


def test_the_painter_repaints_a_batch_of_any_sizes_seeded_per_request(painter: FashnTryOnPainter) -> None:
    requests = [request(0), request(1, size=(700, 1200), paint=(100, 300, 600, 900)), request(2, keep=None)]
    outputs = painter.repaint(requests)
    for req, out in zip(requests, outputs, strict=True):
        assert out.shape == req.render.shape and out.dtype == np.uint8
        outside, keep = req.paint_mask == 0, req.keep_mask > 0
        assert np.array_equal(out[outside], req.render[outside]) and np.array_equal(out[keep], req.render[keep])
        assert not np.array_equal(out, req.render)
    alone = painter.repaint([requests[1]])[0].astype(int)  # its seed, not its place in the batch, decides
    assert np.abs(alone - outputs[1]).max() <= 2  # (float sums may round apart across batch sizes)
    reseeded = painter.repaint([replace(requests[1], seed=7)])[0].astype(int)
    assert np.abs(reseeded - outputs[1]).mean() > 10 * max(1e-3, np.abs(alone - outputs[1]).mean())
    assert painter.repaint([]) == []


def test_planned_under_commercial_safe_from_a_verified_weights_folder(tiny_folder: Path, tmp_path: Path) -> None:
    from pipeline.backends.config import ModelConfig
    from pipeline.backends.planned import PlannedBackends
    from pipeline.backends.weights import WeightsError, write_manifest

    weights = tmp_path / "weights"
    with pytest.raises(WeightsError):
        PlannedBackends(ModelConfig(profile="commercial-safe", weights_dir=weights)).serving("TryOnPainter")
    shutil.copytree(tiny_folder, weights / "fashn")
    write_manifest(weights, ["fashn"])
    painter = PlannedBackends(ModelConfig(profile="commercial-safe", weights_dir=weights, tryon_steps=2)
                              ).serving("TryOnPainter")
    assert isinstance(painter, FashnTryOnPainter) and painter.steps == 2
    (out,) = painter.repaint([request(4)])
    assert out.shape == (768, 512, 3)


def test_a_missing_model_fails_clearly_without_downloading(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        FashnTryOnPainter(tmp_path / "nothing", device="cpu").load()


def test_its_row_is_commercial_and_planned_only_under_commercial_safe() -> None:
    row = BACKENDS["fashn-vton-1.5"]
    assert BACKENDS.commercial_use(row.key) and row.gpu and row.profiles == ("commercial-safe",)
    assert BACKENDS.plan("commercial-safe")["TryOnPainter"] == "fashn-vton-1.5"
    assert BACKENDS.plan("gpu")["TryOnPainter"] == "flux-fill-tryon"
    assert [s.subdir for s in row.weights.sources] == ["", "dwpose"]  # type: ignore[union-attr]
