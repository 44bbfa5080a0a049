"""Phase 2, wardrobe, on garments the tests draw themselves: mask, category, colours, print, sources of
size chart and fabric, refusals, outputs. The real classical segmenter runs (it is fast); the vision LLM
is a fake with the same protocol. The dev photos add real garments in test_wardrobe_devdata.py."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fakes_wardrobe import (
    DRESS,
    REFUSING_LLM,
    SKIRT,
    TROUSERS,
    FakeSegmenter,
    FakeVisionLLM,
    encode,
    iou,
    paint,
    polygon_mask,
    run_wardrobe,
    tshirt_mask,
)
from infra.folder_store import FolderStore
from pipeline.backends.garment_mask import ClassicalGarmentSegmenter
from pipeline.backends.gemini import GeminiVisionLLM
from pipeline.backends.protocols import GarmentSegmenter, VisionLLM
from pipeline.errors import InvalidInput, RetryableError
from pipeline.spec import GarmentSpec, JobSpec, SizeRow
from pipeline.wardrobe import defaults
from pipeline.wardrobe.appearance import analyse_appearance
from pipeline.wardrobe.category import infer_category
from pipeline.wardrobe.contracts import GarmentAnalysis
from pipeline.wardrobe.phase import WardrobeBackends

OUTPUTS = {"garment.json", "mask.png", "cutout.png", "texture.png", "overlay.png"}
WHITE, GREY, STUDIO = (255, 255, 255), (200, 200, 200), (246, 246, 246)


@pytest.fixture(scope="module")
def segmenter() -> ClassicalGarmentSegmenter:
    return ClassicalGarmentSegmenter()


@pytest.fixture
def backends(segmenter: ClassicalGarmentSegmenter) -> WardrobeBackends:
    return WardrobeBackends(segmenter=segmenter)


def analysis_of(files: dict[str, bytes]) -> GarmentAnalysis:
    return GarmentAnalysis.model_validate_json(files["garment.json"])


def tee(colour: tuple[int, int, int] = (40, 90, 200), background: tuple[int, int, int] = WHITE) -> bytes:
    return encode(paint(tshirt_mask(), colour, background))


# ---- backends and their fakes share the protocols ------------------------------------------------------


def test_backends_and_fakes_satisfy_the_protocols(segmenter: ClassicalGarmentSegmenter) -> None:
    assert isinstance(segmenter, GarmentSegmenter) and isinstance(FakeSegmenter(), GarmentSegmenter)
    assert isinstance(FakeVisionLLM(), VisionLLM)
    assert isinstance(GeminiVisionLLM(api_key="k"), VisionLLM)  # constructing it loads no SDK
    assert "opencv" in segmenter.version


def test_importing_the_phase_and_its_backends_loads_neither_opencv_nor_genai() -> None:
    probe = ("import sys, pipeline.wardrobe.phase, pipeline.backends.garment_mask, pipeline.backends.gemini\n"
             "print(','.join(m for m in ('cv2', 'google.genai') if m in sys.modules))")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


# ---- the mask ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "truth", "colour", "background", "shadow", "min_iou"),
    [
        ("blue T-shirt with a neckline on white", tshirt_mask(), (40, 90, 200), WHITE, 0.0, 0.95),
        ("red T-shirt on grey", tshirt_mask(), (200, 60, 60), GREY, 0.0, 0.95),
        ("white T-shirt on white with a drop shadow", tshirt_mask(), (248, 248, 246), WHITE, 0.12, 0.87),
        ("black top with a keyhole on studio grey", tshirt_mask(keyhole=True), (30, 30, 30), STUDIO, 0.0, 0.95),
        ("navy trousers on studio grey", polygon_mask(TROUSERS), (40, 50, 90), STUDIO, 0.0, 0.94),
        ("green strappy dress on white", polygon_mask(DRESS), (30, 140, 90), WHITE, 0.0, 0.95),
    ],
)
def test_the_mask_matches_the_drawn_garment(segmenter: ClassicalGarmentSegmenter, case: str, truth: np.ndarray,
                                            colour: tuple[int, int, int], background: tuple[int, int, int],
                                            shadow: float, min_iou: float) -> None:
    alpha = segmenter.segment(paint(truth, colour, background, shadow))
    assert alpha.dtype == np.float32 and alpha.shape == truth.shape
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0
    assert iou(alpha, truth) >= min_iou, case


def test_a_keyhole_stays_open_and_the_neckline_stays_background(segmenter: ClassicalGarmentSegmenter) -> None:
    alpha = segmenter.segment(paint(tshirt_mask(keyhole=True), (30, 30, 30), STUDIO))
    assert alpha[260, 300] < 0.5  # the keyhole's centre
    assert alpha[110, 300] < 0.5  # the neckline notch
    assert alpha[400, 300] > 0.5  # the body


def test_trouser_legs_stay_apart_at_the_hem(segmenter: ClassicalGarmentSegmenter) -> None:
    alpha = segmenter.segment(paint(polygon_mask(TROUSERS), (40, 50, 90), STUDIO))
    assert alpha[700, 300] < 0.5 and alpha[700, 230] > 0.5 and alpha[700, 370] > 0.5


def test_a_drop_shadow_adds_at_most_its_dark_inner_band(segmenter: ClassicalGarmentSegmenter) -> None:
    """A known limit: where a soft shadow is darker than the near-white shirt casting it and carries JPEG
    noise, its inner band (about 12 px here) joins the garment; its lighter outer part never does."""
    truth = tshirt_mask()
    alpha = segmenter.segment(paint(truth, (248, 248, 246), WHITE, shadow=0.12))
    away = cv2.distanceTransform((~truth).astype(np.uint8), cv2.DIST_L2, 3)
    assert (alpha[(away > 15) & (away < 30)] > 0.5).mean() < 0.05
    assert (alpha[truth] > 0.5).mean() > 0.96


@pytest.mark.parametrize("image", [np.full((400, 300, 3), 255, np.uint8), np.full((400, 300, 3), 128, np.uint8)])
def test_an_empty_backdrop_gives_an_empty_mask(segmenter: ClassicalGarmentSegmenter, image: np.ndarray) -> None:
    assert segmenter.segment(image).max() == 0.0


# ---- category ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("truth", "category"), [(tshirt_mask(), "upper"), (polygon_mask(TROUSERS), "lower"),
                                                 (polygon_mask(SKIRT), "lower"), (polygon_mask(DRESS), "full")])
def test_the_category_follows_the_shape(segmenter: ClassicalGarmentSegmenter, truth: np.ndarray,
                                        category: str) -> None:
    assert infer_category(truth.astype(np.float32)).category == category
    guess = infer_category(segmenter.segment(paint(truth, (120, 60, 140), WHITE)))
    assert guess.category == category and guess.confidence >= 0.5


# ---- appearance ---------------------------------------------------------------------------------------------


def two_colour_tee() -> tuple[np.ndarray, np.ndarray]:
    truth = tshirt_mask()
    image = paint(truth, (200, 30, 40), WHITE)
    sleeves = truth & (np.arange(truth.shape[1])[None, :] < 190) | truth & (np.arange(truth.shape[1])[None, :] > 410)
    blue = paint(truth, (30, 60, 200), WHITE, seed=1)
    image[sleeves] = blue[sleeves]
    return image, truth


def test_dominant_colours_find_body_and_sleeves() -> None:
    image, truth = two_colour_tee()
    colours = analyse_appearance(image, truth.astype(np.float32)).colours
    rgb = [np.array([int(c.hex[i:i + 2], 16) for i in (1, 3, 5)]) for c in colours]
    assert np.abs(rgb[0] - (200, 30, 40)).max() < 30 and 0.6 < colours[0].share < 0.9
    assert any(np.abs(c - (30, 60, 200)).max() < 35 for c in rgb[1:])
    assert abs(sum(c.share for c in colours) - 1.0) < 0.01


def test_a_plain_tee_has_no_print_and_a_logo_is_found_where_it_is() -> None:
    truth = tshirt_mask()
    plain = paint(truth, (40, 90, 200), WHITE)
    assert analyse_appearance(plain, truth.astype(np.float32)).print_region.kind == "none"
    logo = plain.copy()
    cv2.putText(logo, "DROP", (215, 330), cv2.FONT_HERSHEY_SIMPLEX, 2.2, (250, 220, 40), 7, cv2.LINE_AA)
    found = analyse_appearance(logo, truth.astype(np.float32))
    assert found.print_region.kind == "placed"
    x0, y0, x1, y1 = found.print_region.box  # type: ignore[misc]
    assert x0 < 300 < x1 and y0 < 300 < y1 and (x1 - x0) * (y1 - y0) < 0.4 * truth.sum()
    tx0, ty0, tx1, ty1 = found.texture_box
    assert ty0 >= y1 or ty1 <= y0 or tx0 >= x1 or tx1 <= x0, "the texture crop avoids the logo"
    assert truth[ty0:ty1, tx0:tx1].all(), "the texture crop is all fabric"


def test_stripes_all_over_are_an_all_over_print() -> None:
    truth = tshirt_mask()
    image = paint(truth, (240, 240, 240), STUDIO)
    stripes = truth & ((np.arange(truth.shape[0]) // 12) % 2 == 0)[:, None]
    image[stripes] = (20, 30, 60)
    assert analyse_appearance(image, truth.astype(np.float32)).print_region.kind == "all-over"


# ---- the phase: outputs, sources, defaults ---------------------------------------------------------------


def test_the_phase_writes_its_outputs_and_marks_every_default(folder_store: FolderStore,
                                                              backends: WardrobeBackends) -> None:
    result, files = run_wardrobe(folder_store, backends, tee())
    assert set(files) == OUTPUTS
    analysis = analysis_of(files)
    assert analysis.schema_version == 1 and (analysis.image.width, analysis.image.height) == (600, 800)
    assert analysis.category.value == "upper" and analysis.category.source == "inferred"
    assert analysis.size_chart.source == "default" and analysis.size_chart.rows == defaults.SIZE_CHART
    assert analysis.size_chart.size is None and analysis.size_chart.size_source == "unknown"
    assert analysis.fabric.stretch_source == analysis.fabric.thickness_source == "default"
    assert analysis.fabric.stretch == defaults.FABRIC["upper"].stretch
    assert set(analysis.defaults_used) == {"size_chart", "fabric.stretch", "fabric.thickness_mm"}
    assert 0.2 < analysis.mask.coverage < 0.4 and analysis.mask.parts == 1 and not analysis.mask.touches_border
    assert analysis.appearance.colours[0].hex.startswith("#") and not analysis.appearance.has_print
    assert result.backends["segmenter"].startswith("classical-garment-mask") and "vision_llm" not in result.backends
    assert result.data["category"] == "upper" and set(result.data["timings_ms"]) >= {"mask", "write"}


def test_the_output_images_line_up_with_the_analysis(folder_store: FolderStore, backends: WardrobeBackends) -> None:
    _, files = run_wardrobe(folder_store, backends, tee())
    analysis = analysis_of(files)
    mask = np.asarray(Image.open(io.BytesIO(files["mask.png"])))
    cutout = np.asarray(Image.open(io.BytesIO(files["cutout.png"])))
    texture = Image.open(io.BytesIO(files["texture.png"]))
    overlay = Image.open(io.BytesIO(files["overlay.png"]))
    assert mask.shape == (800, 600) and mask.dtype == np.uint8 and set(np.unique(mask)) >= {0, 255}
    assert cutout.shape == (800, 600, 4) and np.array_equal(cutout[..., 3], mask)
    x0, y0, x1, y1 = analysis.appearance.texture_box
    assert texture.size == (x1 - x0, y1 - y0) and min(texture.size) > 50
    assert overlay.size == (600, 800) and overlay.mode == "RGB"


def test_job_json_size_chart_and_fabric_pass_through(folder_store: FolderStore, backends: WardrobeBackends) -> None:
    chart = (SizeRow(label="38", chest_cm=88, waist_cm=70, hip_cm=96, length_cm=64),
             SizeRow(label="40", chest_cm=92, waist_cm=74, hip_cm=100, length_cm=66))
    spec = JobSpec(garment=GarmentSpec(category="upper", size="40", size_chart=chart, stretch=0.45, thickness_mm=1.4))
    _, files = run_wardrobe(folder_store, backends, tee(), spec)
    analysis = analysis_of(files)
    assert analysis.size_chart.rows == chart and analysis.size_chart.source == "job.json"
    assert analysis.size_chart.size == "40" and analysis.size_chart.size_source == "job.json"
    assert (analysis.fabric.stretch, analysis.fabric.thickness_mm) == (0.45, 1.4)
    assert analysis.fabric.stretch_source == analysis.fabric.thickness_source == "job.json"
    assert analysis.category.source == "job.json" and analysis.category.confidence == 1.0
    assert analysis.defaults_used == ()


def test_job_json_category_wins_and_a_disagreeing_shape_is_noted(folder_store: FolderStore,
                                                                  backends: WardrobeBackends) -> None:
    spec = JobSpec(garment=GarmentSpec(category="full"))
    _, files = run_wardrobe(folder_store, backends, tee(), spec)
    analysis = analysis_of(files)
    assert analysis.category.value == "full" and analysis.category.inferred == "upper"
    assert any("looks upper" in note for note in analysis.notes)
    assert analysis.fabric.stretch == defaults.FABRIC["full"].stretch  # defaults follow the category used


# ---- the vision LLM -------------------------------------------------------------------------------------------


def test_the_vision_llm_fills_what_job_json_leaves_open(folder_store: FolderStore,
                                                         segmenter: ClassicalGarmentSegmenter) -> None:
    llm = FakeVisionLLM()
    spec = JobSpec(garment=GarmentSpec(thickness_mm=2.0))
    result, files = run_wardrobe(folder_store, WardrobeBackends(segmenter, llm), tee(), spec,
                                 size_chart=encode(np.full((300, 400, 3), 250, np.uint8)))
    analysis = analysis_of(files)
    assert llm.calls == ["infer_fabric", "read_size_chart"]
    assert analysis.category.value == "full" and analysis.category.source == "vision-llm"
    assert analysis.fabric.stretch == 0.6 and analysis.fabric.stretch_source == "vision-llm"
    assert analysis.fabric.thickness_mm == 2.0 and analysis.fabric.thickness_source == "job.json"
    assert analysis.fabric.material == "viscose jersey"
    assert analysis.size_chart.source == "vision-llm" and [r.label for r in analysis.size_chart.rows] == ["S", "M"]
    assert analysis.defaults_used == ()
    assert result.backends["vision_llm"] == "fake-vision-llm 1"


def test_the_llm_is_not_asked_what_job_json_already_says(folder_store: FolderStore,
                                                          segmenter: ClassicalGarmentSegmenter) -> None:
    llm = FakeVisionLLM()
    spec = JobSpec(garment=GarmentSpec(category="upper", stretch=0.2, thickness_mm=0.5,
                                       size_chart=(SizeRow(label="M", chest_cm=96),)))
    _, files = run_wardrobe(folder_store, WardrobeBackends(segmenter, llm), tee(), spec,
                            size_chart=encode(np.full((300, 400, 3), 250, np.uint8)))
    assert llm.calls == []
    assert any("job.json gives the size chart" in note for note in analysis_of(files).notes)


def test_a_size_chart_image_without_an_llm_is_noted_not_read(folder_store: FolderStore,
                                                              backends: WardrobeBackends) -> None:
    _, files = run_wardrobe(folder_store, backends, tee(), size_chart=b"not even an image")
    analysis = analysis_of(files)
    assert analysis.size_chart.source == "default" and "size_chart" in analysis.defaults_used
    assert any("not read: no vision LLM is configured" in note for note in analysis.notes)


def test_a_refusing_llm_falls_back_to_defaults_with_a_note(folder_store: FolderStore,
                                                            segmenter: ClassicalGarmentSegmenter) -> None:
    _, files = run_wardrobe(folder_store, WardrobeBackends(segmenter, REFUSING_LLM), tee())
    analysis = analysis_of(files)
    assert analysis.category.source == "inferred" and "fabric.stretch" in analysis.defaults_used
    assert any("could not infer the fabric" in note and "INVALID_ARGUMENT" in note for note in analysis.notes)


def test_a_transient_llm_failure_makes_the_run_retry(folder_store: FolderStore,
                                                     segmenter: ClassicalGarmentSegmenter) -> None:
    llm = FakeVisionLLM(error=RetryableError("429 RESOURCE_EXHAUSTED"))
    with pytest.raises(RetryableError):
        run_wardrobe(folder_store, WardrobeBackends(segmenter, llm), tee())


# ---- refusals -------------------------------------------------------------------------------------------------


def noise() -> bytes:
    return encode(np.random.default_rng(3).integers(0, 256, (800, 600, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    ("upload", "reason"),
    [
        (b"", "empty file"),
        (b"GIF89a this is not a photo", "not a readable image"),
        (encode(np.full((800, 600, 3), 255, np.uint8)), "no garment found"),
        (encode(np.full((800, 600, 3), 246, np.uint8), "JPEG"), "no garment found"),
        (noise(), "no garment found"),
        (encode(cv2.resize(paint(tshirt_mask(), (200, 60, 60), WHITE)[300:500, 250:350], (600, 800))),
         "no garment found"),
    ],
    ids=["empty", "not-an-image", "blank-white", "blank-studio-grey", "random-noise", "fabric-fills-the-frame"],
)
def test_unusable_garment_photos_are_refused_clearly(folder_store: FolderStore, backends: WardrobeBackends,
                                                     upload: bytes, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        run_wardrobe(folder_store, backends, upload)
    assert reason in refused.value.reason and refused.value.user_action
    assert not list(folder_store.list("work/"))  # nothing written


def test_a_photo_of_a_person_is_refused(folder_store: FolderStore, backends: WardrobeBackends) -> None:
    try:
        from pipeline.sample import sample_person

        person = sample_person()
    except ImportError as exc:  # the body model (cpu extra) renders the sample person
        pytest.skip(f"the sample person needs the cpu extra: {exc}")
    with pytest.raises(InvalidInput) as refused:
        run_wardrobe(folder_store, backends, person)
    assert "shows a person" in refused.value.reason and "person.jpg" in refused.value.user_action


def test_a_face_printed_on_a_shirt_is_no_wearer() -> None:
    from pipeline.wardrobe.person import check_wearer

    truth = tshirt_mask()
    image = paint(truth, (240, 240, 240), WHITE)
    assert not check_wearer(image, truth.astype(np.float32)).wearer


# ---- uploads with their own transparency, and the project's demo garment ---------------------------------


def test_a_transparent_png_brings_its_own_mask(folder_store: FolderStore, backends: WardrobeBackends) -> None:
    truth = tshirt_mask()
    rgba = np.dstack([paint(truth, (40, 160, 80), WHITE), (truth * 255).astype(np.uint8)])
    result, files = run_wardrobe(folder_store, backends, encode(rgba))
    mask = np.asarray(Image.open(io.BytesIO(files["mask.png"]))) > 127
    assert result.backends["segmenter"] == "png-alpha" and np.array_equal(mask, truth)


def test_the_demo_garment_is_an_upper_with_a_print(folder_store: FolderStore, backends: WardrobeBackends) -> None:
    from pipeline.sample import sample_garment

    _, files = run_wardrobe(folder_store, backends, sample_garment())
    analysis = analysis_of(files)
    assert analysis.category.value == "upper" and analysis.appearance.print.kind == "placed"
    assert analysis.appearance.colours[0].hex[1:3] > "a0"  # red first
    assert json.loads(files["garment.json"])["schema_version"] == 1


def test_the_contract_is_strict() -> None:
    with pytest.raises(ValueError):
        GarmentAnalysis.model_validate({"schema_version": 1, "surprise": True})
