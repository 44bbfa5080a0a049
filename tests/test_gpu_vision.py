"""The GPU vision adapters on CPU: InsightFace, YOLO, SAM and the detector-first person landmarker.

Each adapter's pre- and post-processing is checked on plain arrays; the adapters themselves run end to end on
tiny random-weight models built here: InsightFace on tiny ONNX files of the signatures it routes by
(tests/tiny_onnx.py), SAM on a tiny `SamConfig` saved with `save_pretrained`, YOLO on a model built from
`yolo11n.yaml` (skipped with the reason where ultralytics cannot import: it is not installed next to CPU torch).
The person landmarker runs with small fakes for the detector and segmenter, and with the real mediapipe
landmarker on a dev photo when ../shared/data/tryon is there.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakes_person import FakePersonLandmarker, standing_person
from pipeline.backends.gpu import insightface_face as iface
from pipeline.backends.gpu import person as gperson
from pipeline.backends.gpu import sam as gsam
from pipeline.backends.gpu import yolo_person as yolo
from pipeline.backends.gpu.insightface_face import InsightFaceEmbedder
from pipeline.backends.gpu.person import DetectedPersonLandmarker
from pipeline.backends.gpu.sam import SamSegmenter
from pipeline.backends.gpu.yolo_person import YoloPersonDetector
from pipeline.backends.protocols import (
    Detection,
    FaceEmbedder,
    GarmentSegmenter,
    PersonDetector,
    PersonLandmarker,
    PersonObservation,
    PromptSegmenter,
)
from tiny_onnx import write_face_pack
from tiny_transformers import tiny_sam
from tiny_weights import adapter_device

DEVICE = adapter_device()

Box = tuple[int, int, int, int]

# ---- fakes: tiny classes honouring the protocols ----------------------------------------------------------


class FakePersonDetector:
    """Returns the detections it was given, most confident first, for any image."""

    name = "fake-detector"
    version = "1"

    def __init__(self, found: list[Detection]) -> None:
        self.found = sorted(found, key=lambda d: d.score, reverse=True)
        self.calls = 0

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        self.calls += 1
        return list(self.found)


class FakePromptSegmenter:
    """Each box filled (1 inside, 0 outside); remembers the boxes it was asked about."""

    name = "fake-segmenter"
    version = "1"

    def __init__(self) -> None:
        self.asked: list[list[Box]] = []

    def segment_boxes(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        self.asked.append(list(boxes))
        masks = []
        for x0, y0, x1, y1 in boxes:
            mask = np.zeros(rgb.shape[:2], dtype=np.float32)
            mask[y0:y1, x0:x1] = 1.0
            masks.append(mask)
        return masks


class FakeGarmentSegmenter:
    """A fixed alpha for any image."""

    name = "fake-garment"
    version = "1"

    def __init__(self, alpha: np.ndarray) -> None:
        self.alpha = alpha

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        return self.alpha


class CropLandmarker:
    """A standing person filling whatever image (crop) it is shown; remembers the shapes it saw."""

    name = "fake-crop-landmarker"
    version = "1"

    def __init__(self) -> None:
        self.seen: list[tuple[int, ...]] = []

    def find_person(self, rgb: np.ndarray) -> PersonObservation | None:
        self.seen.append(rgb.shape)
        height, width = rgb.shape[:2]
        return standing_person(size=(width, height), box=(0, 0, width, height),
                               notes=("2 people found; used the most prominent (the largest, on the left)",
                                      "outside the photo: feet"))


_detector: PersonDetector = FakePersonDetector([])
_prompt: PromptSegmenter = FakePromptSegmenter()
_garment: GarmentSegmenter = FakeGarmentSegmenter(np.zeros((1, 1), dtype=np.float32))
_crop: PersonLandmarker = CropLandmarker()


def test_the_fakes_honour_the_protocols() -> None:
    assert isinstance(_detector, PersonDetector) and isinstance(_prompt, PromptSegmenter)
    assert isinstance(_garment, GarmentSegmenter) and isinstance(_crop, PersonLandmarker)


# ---- InsightFace: plain functions ---------------------------------------------------------------------------


def test_rgb_becomes_contiguous_bgr_and_bad_input_is_refused() -> None:
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # red
    for to_bgr in (iface.to_bgr, yolo.to_bgr):
        bgr = to_bgr(rgb)
        assert bgr.flags.c_contiguous and bgr[0, 0].tolist() == [0, 0, 200]
        with pytest.raises(ValueError, match="uint8 RGB"):
            to_bgr(rgb.astype(np.float32))
        with pytest.raises(ValueError, match="uint8 RGB"):
            to_bgr(rgb[..., 0])


def test_the_l2_threshold_matches_insightfaces_cosine_cut() -> None:
    assert iface.l2_threshold(0.4) == pytest.approx(1.0954, abs=1e-4)
    assert iface.SAME_PERSON == pytest.approx(iface.l2_threshold(iface.COSINE_SAME_PERSON), abs=0.01)
    assert iface.l2_threshold(1.0) == 0.0 and iface.l2_threshold(-1.0) == pytest.approx(2.0)
    a, b = iface.normalised(np.random.default_rng(0).standard_normal((2, 512)))
    assert float(np.linalg.norm(a - b)) == pytest.approx(iface.l2_threshold(float(a @ b)), abs=1e-5)


def test_providers_are_cuda_then_cpu_where_the_runtime_has_them() -> None:
    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert iface.chosen_providers(None, [*both, "AzureExecutionProvider"]) == both
    assert iface.chosen_providers(None, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert iface.chosen_providers(["CPUExecutionProvider"], both) == ["CPUExecutionProvider"]
    with pytest.raises(RuntimeError, match="none of the providers"):
        iface.chosen_providers(["TensorrtExecutionProvider"], ["CPUExecutionProvider"])


def test_cuda_is_expected_when_asked_for_or_when_a_gpu_has_the_gpu_runtime() -> None:
    cuda, cpu = iface.CUDA, "CPUExecutionProvider"
    assert iface.cuda_expected([cuda, cpu], gpu=False, gpu_runtime=False)
    assert not iface.cuda_expected([cpu], gpu=True, gpu_runtime=True)  # the CPU, asked for: meant
    assert iface.cuda_expected(None, gpu=True, gpu_runtime=True)
    assert not iface.cuda_expected(None, gpu=True, gpu_runtime=False) and not iface.cuda_expected(None, False, True)


def test_a_gpu_container_whose_sessions_fell_back_to_the_cpu_fails_loudly() -> None:
    cuda, cpu = iface.CUDA, "CPUExecutionProvider"
    with pytest.raises(RuntimeError, match="a GPU is present and onnxruntime-gpu is installed: its sessions use"):
        iface.check_providers(None, [cpu], [cpu], gpu=True, gpu_installed=True, runtime_version="1.31.1")  # shadowed
    with pytest.raises(RuntimeError, match="CUDA or cuDNN libraries are missing"):
        iface.check_providers(None, [cpu], [cuda, cpu], gpu=True, gpu_installed=True, runtime_version="1.31.1")
    with pytest.raises(RuntimeError, match="CUDA was asked for"):
        iface.check_providers([cuda, cpu], [cpu], [cpu], gpu=False, gpu_installed=False, runtime_version="1.31.1")
    iface.check_providers(None, [cuda, cpu], [cuda, cpu], gpu=True, gpu_installed=True, runtime_version="1.31.1")
    iface.check_providers([cpu], [cpu], [cuda, cpu], gpu=True, gpu_installed=True, runtime_version="1.31.1")
    iface.check_providers(None, [cpu], [cpu], gpu=False, gpu_installed=False, runtime_version="1.31.1")  # a CPU box
    with pytest.warns(RuntimeWarning, match="CPU build"):
        iface.check_providers(None, [cpu], [cpu], gpu=True, gpu_installed=False, runtime_version="1.31.1")


def test_faces_are_kept_largest_first_and_small_ones_dropped() -> None:
    boxes = np.array([[0, 0, 40, 40, 0.9], [0, 0, 20, 80, 0.99], [10, 10, 110, 110, 0.6], [0, 0, 50, 60, 0.7]])
    assert iface.largest_first(boxes, max_faces=6).tolist() == [2, 3, 0]  # the 20 px wide one is too small
    assert iface.largest_first(boxes, max_faces=1).tolist() == [2]
    assert iface.largest_first(np.zeros((0, 5)), max_faces=6).tolist() == []


def test_alignment_is_insightfaces_arcface_fit() -> None:
    from insightface.utils import face_align

    points = np.array([[130.0, 210.0], [190.0, 205.0], [162.0, 250.0], [137.0, 290.0], [186.0, 286.0]])
    matrix = iface.alignment(points)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-image's deprecated `estimate`, inside insightface
        reference = face_align.estimate_norm(points.astype(np.float32), 112)
    np.testing.assert_allclose(matrix, reference, atol=1e-3)
    on_chip = points @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(on_chip - iface.ARCFACE_POINTS).max() < 6.0  # a real face's points sit near the template
    exact = iface.ARCFACE_POINTS * 2.0 + [40.0, 25.0]  # the template scaled and moved: fitted exactly
    mapped = exact @ iface.alignment(exact)[:, :2].T + iface.alignment(exact)[:, 2]
    np.testing.assert_allclose(mapped, iface.ARCFACE_POINTS, atol=1e-6)
    chips = iface.aligned_crops(np.zeros((400, 300, 3), dtype=np.uint8), points[None])
    assert len(chips) == 1 and chips[0].shape == (112, 112, 3) and chips[0].dtype == np.uint8


def test_detections_become_faces_with_unit_embeddings_and_clipped_boxes() -> None:
    boxes = np.array([[-5.4, 10.6, 70.2, 90.0, 0.91], [100.0, 20.0, 180.7, 130.0, 0.8]])
    points = np.arange(20, dtype=np.float64).reshape(2, 5, 2)
    embeddings = np.vstack([np.full(512, 3.0), np.zeros(512)])
    faces = iface.to_faces(boxes, points, embeddings, width=160, height=120)
    assert [f.box for f in faces] == [(0, 11, 70, 90), (100, 20, 160, 120)]
    assert faces[0].embedding.dtype == np.float32 and faces[0].embedding.shape == (512,)
    assert float(np.linalg.norm(faces[0].embedding)) == pytest.approx(1.0, abs=1e-6)
    assert not faces[1].embedding.any()  # a zero vector stays zero rather than turning into NaN
    assert faces[0].landmarks.shape == (5, 2) and faces[0].score == pytest.approx(0.91)


def test_a_missing_face_model_folder_is_an_error_not_a_download(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no InsightFace model"):
        InsightFaceEmbedder(tmp_path / "buffalo_l")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="fetched ahead of time"):
        InsightFaceEmbedder(tmp_path / "empty")


# ---- InsightFace: end to end on the tiny ONNX pack -----------------------------------------------------------


@pytest.fixture(scope="module")
def face_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_face_pack(tmp_path_factory.mktemp("insightface") / "tiny_pack")


def face_photo(size: int, cells: list[tuple[int, int]], fringe: tuple[int, int] | None = None) -> np.ndarray:
    """A dark photo with a white 32 x 32 square on each given cell (column, row): the tiny detector's faces.
    The `fringe` cell also gets a grey band just above it (inside its aligned crop, outside what fires)."""
    rgb = np.full((size, size, 3), 40, dtype=np.uint8)
    for col, row in cells:
        rgb[row * 32:(row + 1) * 32, col * 32:(col + 1) * 32] = 255
    if fringe is not None:
        col, row = fringe
        rgb[row * 32 - 10:row * 32, col * 32:(col + 1) * 32] = 150
    return rgb


def test_the_insightface_adapter_finds_and_embeds_a_face(face_pack: Path) -> None:
    embedder = InsightFaceEmbedder(face_pack, providers=["CPUExecutionProvider"], det_size=(128, 128))
    assert isinstance(embedder, FaceEmbedder) and embedder.threshold == iface.SAME_PERSON
    assert "det_tiny.onnx" in embedder.version and embedder.version.startswith("insightface 2.1")
    rgb = face_photo(128, [(2, 1)])  # the square spans x 64-96, y 32-64
    faces = embedder.faces(rgb)
    assert len(faces) == 1
    face = faces[0]
    x0, y0, x1, y1 = face.box
    assert 0 <= x0 < 64 + 16 < x1 <= 128 and 0 <= y0 < 32 + 16 < y1 <= 128  # inside the photo, around the square
    assert abs((x0 + x1) / 2 - 80) <= 2 and abs((y0 + y1) / 2 - 48) <= 2 and face.score > 0.9
    assert ((face.landmarks >= [x0, y0]) & (face.landmarks <= [x1, y1])).all()
    assert face.embedding.shape == (512,) and face.embedding.dtype == np.float32
    assert float(np.linalg.norm(face.embedding)) == pytest.approx(1.0, abs=1e-5)
    again = embedder.faces(rgb.copy())[0]
    assert float(np.linalg.norm(again.embedding - face.embedding)) < 1e-6 < embedder.threshold
    assert embedder.faces(np.full((128, 128, 3), 40, dtype=np.uint8)) == []
    assert embedder.providers_used == ("CPUExecutionProvider",)


def test_asking_for_cuda_where_onnx_runtime_has_only_the_cpu_fails_at_load(face_pack: Path) -> None:
    import onnxruntime

    if iface.CUDA in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has the CUDA provider")
    embedder = InsightFaceEmbedder(face_pack, providers=[iface.CUDA, "CPUExecutionProvider"], det_size=(128, 128))
    with pytest.raises(RuntimeError, match="would run on the CPU although CUDA was asked for"):
        embedder.load()


def test_the_insightface_adapter_runs_on_cuda(face_pack: Path) -> None:
    import onnxruntime

    if DEVICE != "cuda":
        pytest.skip("DROPFIT_TEST_DEVICE is not cuda")
    if iface.CUDA not in onnxruntime.get_available_providers():
        pytest.skip(f"ONNX Runtime {onnxruntime.__version__} here has no CUDA provider (onnxruntime-gpu is not "
                    "installed): InsightFace runs on the CPU on this machine")
    embedder = InsightFaceEmbedder(face_pack, providers=[iface.CUDA], det_size=(128, 128))
    faces = embedder.faces(face_photo(128, [(2, 1)]))
    assert embedder.providers_used[0] == iface.CUDA and len(faces) == 1


def test_faces_of_one_photo_are_embedded_in_one_batch_as_if_alone(face_pack: Path) -> None:
    embedder = InsightFaceEmbedder(face_pack, providers=["CPUExecutionProvider"], det_size=(256, 256))
    both = embedder.faces(face_photo(256, [(1, 1), (5, 5)], fringe=(5, 5)))
    assert len(both) == 2
    for cell in ((1, 1), (5, 5)):
        alone = embedder.faces(face_photo(256, [cell], fringe=(5, 5) if cell == (5, 5) else None))[0]
        twin = min(both, key=lambda f: abs(f.box[0] - alone.box[0]))
        assert twin.box == alone.box
        np.testing.assert_allclose(twin.embedding, alone.embedding, atol=1e-5)
    assert float(np.linalg.norm(both[0].embedding - both[1].embedding)) > 0.05  # different crops, different ids


# ---- YOLO: plain functions ------------------------------------------------------------------------------------


def test_yolo_results_become_people_sorted_by_score_and_clipped() -> None:
    boxes = np.array([[10.2, -4.0, 50.7, 90.0], [0, 0, 30, 30], [-20, 5, 130, 70.5], [60, 60, 60, 80], [5, 5, 9, 9]])
    scores = np.array([0.6, 0.99, 0.8, 0.9, 0.1])
    classes = np.array([0.0, 2.0, 0.0, 0.0, 0.0])  # a car; an empty box; a weak person
    found = yolo.detections(boxes, scores, classes, width=120, height=80, min_score=0.25)
    assert [d.box for d in found] == [(0, 5, 120, 71), (10, 0, 51, 80)]
    assert [d.score for d in found] == pytest.approx([0.8, 0.6]) and {d.label for d in found} == {"person"}
    assert yolo.detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0), width=10, height=10) == []


class FakeBoxes:
    """The part of an ultralytics `Boxes` the adapter reads: torch tensors, as on a GPU."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray) -> None:
        import torch

        self.xyxy = torch.as_tensor(xyxy, dtype=torch.float16)
        self.conf = torch.as_tensor(conf, dtype=torch.float16)
        self.cls = torch.as_tensor(cls, dtype=torch.float32)


class FakeResults:
    def __init__(self, boxes: FakeBoxes) -> None:
        self.boxes = boxes


def test_yolo_result_tensors_become_numpy() -> None:
    result = FakeResults(FakeBoxes(np.array([[1.0, 2.0, 30.0, 40.0]]), np.array([0.5]), np.array([0.0])))
    boxes, scores, classes = yolo.result_arrays(result)
    assert boxes.dtype == np.float32 and boxes.tolist() == [[1.0, 2.0, 30.0, 40.0]]
    assert scores.tolist() == [0.5] and classes.tolist() == [0.0]
    empty = FakeResults(FakeBoxes(np.zeros((0, 4)), np.zeros(0), np.zeros(0)))
    assert [a.shape for a in yolo.result_arrays(empty)] == [(0, 4), (0,), (0,)]


def test_yolo_device_and_missing_weights(tmp_path: Path) -> None:
    assert yolo.chosen_device(None, cuda_available=True) == "cuda:0"
    assert yolo.chosen_device(None, cuda_available=False) == "cpu"
    assert yolo.chosen_device("cuda:1", cuda_available=True) == "cuda:1"
    with pytest.raises(FileNotFoundError, match="never at run time"):
        YoloPersonDetector(tmp_path / "yolo11x.pt")


def ultralytics_or_skip() -> None:
    """Import ultralytics, or skip with the real reason."""
    try:
        import ultralytics  # noqa: F401
    except ModuleNotFoundError as error:
        if error.name == "ultralytics":
            pytest.skip(f"ultralytics not installed (GPU image only): {error}")
        pytest.skip(f"ultralytics cannot import: {error}")
    except Exception as error:  # torchvision's CUDA build fails with RuntimeError / AttributeError at import
        if "torchvision" in str(error):
            pytest.skip(f"torchvision cannot import next to CPU torch (no CPU torchvision on PyPI): {error}")
        pytest.skip(f"ultralytics cannot import: {type(error).__name__}: {error}")


def test_the_yolo_adapter_detects_in_one_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YOLO_OFFLINE", "True")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics"))
    ultralytics_or_skip()
    from ultralytics import YOLO

    weights = tmp_path / "yolo11n.pt"
    YOLO("yolo11n.yaml").save(str(weights))  # random weights, built offline from the model yaml
    detector = YoloPersonDetector(weights, device="cuda:0" if DEVICE == "cuda" else "cpu", conf=0.01,
                                  config_dir=tmp_path / "ultralytics")
    assert isinstance(detector, PersonDetector) and "yolo11n.pt" in detector.version
    photos = [np.full((240, 320, 3), 128, dtype=np.uint8), np.zeros((200, 150, 3), dtype=np.uint8)]
    batches = detector.detect_batch(photos)
    assert len(batches) == 2
    for found, rgb in zip(batches, photos, strict=True):
        assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
        for d in found:
            x0, y0, x1, y1 = d.box
            assert 0 <= x0 < x1 <= rgb.shape[1] and 0 <= y0 < y1 <= rgb.shape[0] and d.label == "person"
    assert detector.detect(photos[0]) == batches[0]


# ---- SAM: plain functions ------------------------------------------------------------------------------------


def test_boxes_are_scaled_as_sams_processor_scales_them() -> None:
    from transformers import SamProcessor
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    scaled = gsam.scaled_boxes([(0, 0, 768, 1024), (100, 200, 300, 400)], (1024, 768), (512, 384))
    np.testing.assert_allclose(scaled, [[0, 0, 384, 512], [50, 100, 150, 200]])
    assert scaled.dtype == np.float32
    processor = SamProcessor(image_processor=SamImageProcessorPil(size={"longest_edge": 64},
                                                                  pad_size={"height": 64, "width": 64}))
    boxes = [(10, 20, 300, 190), (0, 0, 333, 200)]
    encoded = processor(images=np.zeros((200, 333, 3), dtype=np.uint8), input_boxes=[[list(b) for b in boxes]],
                        return_tensors="np")
    resized = tuple(int(v) for v in encoded["reshaped_input_sizes"][0])
    assert resized == (38, 64)
    np.testing.assert_allclose(gsam.scaled_boxes(boxes, (200, 333), resized), encoded["input_boxes"][0], atol=1e-4)


def test_the_best_of_sams_three_masks_is_kept() -> None:
    logits = np.stack([np.full((3, 4, 4), k, dtype=np.float32) + np.arange(3)[:, None, None] for k in (0, 10)])
    scores = np.array([[0.2, 0.9, 0.5], [0.7, 0.1, 0.3]])
    best = gsam.best_masks(logits, scores)
    assert best.shape == (2, 4, 4) and best[0, 0, 0] == 1.0 and best[1, 0, 0] == 10.0


def test_low_res_logits_are_unpadded_and_upsampled_to_the_photo() -> None:
    # a 300 x 200 photo resized to 64 x 43, padded to 64 x 64; SAM's logits are 16 x 16 over the padded input
    logits = np.full((16, 16), -5.0, dtype=np.float32)
    logits[4:8, 2:6] = 5.0  # in the photo: x 50-150, y 50-100 (one low-res cell = 4 padded px = 300/64*4 px)
    logits[12:, :] = 5.0  # padding below the photo: must be cut away
    mask = gsam.thresholded(gsam.upsampled(logits, (64, 64), (43, 64), (200, 300)))
    assert mask.shape == (200, 300) and mask.dtype == np.float32 and set(np.unique(mask)) == {0.0, 1.0}
    ys, xs = np.nonzero(mask)
    assert abs(xs.min() - 37.5) <= 3 and abs(xs.max() - 112.5) <= 3  # cells 2-5 of 16 = padded px 8-24 = 37.5-112.5
    assert abs(ys.min() - 74.4) <= 4 and abs(ys.max() - 148.8) <= 4  # y is scaled by 200/43 per resized px
    assert mask[190:].sum() == 0  # the padded rows never reach the photo


def test_upsampling_agrees_with_sams_own_post_processing() -> None:
    import torch
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    processor = SamImageProcessorPil(pad_size={"height": 64, "width": 64})
    logits = np.random.default_rng(3).normal(0, 3, (1, 2, 16, 16)).astype(np.float32)
    theirs = processor.post_process_masks([torch.from_numpy(logits)], [(200, 300)], [(43, 64)])[0].numpy()
    ours = np.stack([gsam.thresholded(gsam.upsampled(m, (64, 64), (43, 64), (200, 300))) for m in logits[0]])
    assert (ours == theirs[0]).mean() > 0.99


def test_the_garment_box_comes_from_the_first_guess_or_the_margin() -> None:
    alpha = np.zeros((100, 80), dtype=np.float32)
    alpha[20:70, 10:50] = 1.0
    assert gsam.garment_box(alpha) == (10, 20, 50, 70)
    assert gsam.garment_box(np.zeros((100, 80), dtype=np.float32), margin=0.1) == (8, 10, 72, 90)


def test_sam_runs_in_bf16_on_gpus_that_have_it() -> None:
    assert gsam.chosen_dtype(None, cuda=False, bf16_supported=False) == "float32"
    assert gsam.chosen_dtype(None, cuda=True, bf16_supported=True) == "bfloat16"
    assert gsam.chosen_dtype(None, cuda=True, bf16_supported=False) == "float16"
    assert gsam.chosen_dtype("float32", cuda=True, bf16_supported=True) == "float32"


# ---- SAM: end to end on a tiny random model ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sam_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_sam(tmp_path_factory.mktemp("sam") / "tiny_sam")


def garment_photo() -> np.ndarray:
    rgb = np.full((120, 90, 3), 245, dtype=np.uint8)
    rgb[20:100, 20:70] = (40, 60, 160)
    return rgb


def test_the_sam_adapter_segments_boxes_in_one_batch(sam_dir: Path) -> None:
    segmenter = SamSegmenter(sam_dir, device=DEVICE)
    assert isinstance(segmenter, PromptSegmenter) and isinstance(segmenter, GarmentSegmenter)
    assert segmenter.version.startswith("transformers 5.") and "tiny_sam" in segmenter.version
    rgb = garment_photo()
    boxes = [(20, 20, 70, 100), (0, 0, 45, 60)]
    masks = segmenter.segment_boxes(rgb, boxes)
    assert len(masks) == 2
    for mask in masks:
        assert mask.shape == (120, 90) and mask.dtype == np.float32 and set(np.unique(mask)) <= {0.0, 1.0}
    for box, mask in zip(boxes, masks, strict=True):  # batched = one at a time
        np.testing.assert_array_equal(segmenter.segment_boxes(rgb, [box])[0], mask)
    assert segmenter.segment_boxes(rgb, []) == []


def test_the_sam_adapter_refines_a_first_guess_of_the_garment(sam_dir: Path) -> None:
    rgb = garment_photo()
    alpha = np.zeros((120, 90), dtype=np.float32)
    alpha[20:100, 20:70] = 1.0
    segmenter = SamSegmenter(sam_dir, device=DEVICE, first_guess=FakeGarmentSegmenter(alpha))
    mask = segmenter.segment(rgb)
    np.testing.assert_array_equal(mask, segmenter.segment_boxes(rgb, [(20, 20, 70, 100)])[0])
    classical = SamSegmenter(sam_dir, device=DEVICE).segment(rgb)  # the default first guess: the classical mask
    assert classical.shape == (120, 90) and set(np.unique(classical)) <= {0.0, 1.0}


def test_the_sam_adapter_runs_in_bfloat16(sam_dir: Path) -> None:
    masks = SamSegmenter(sam_dir, device="cpu", dtype="bfloat16").segment_boxes(garment_photo(), [(20, 20, 70, 100)])
    assert masks[0].shape == (120, 90) and masks[0].dtype == np.float32


def test_a_missing_sam_folder_is_an_error_not_a_download(tmp_path: Path, sam_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no SAM model"):
        SamSegmenter(tmp_path / "sam-vit-huge")
    with pytest.raises(ValueError, match="dtype"):
        SamSegmenter(sam_dir, dtype="int8")


# ---- the detector-first person landmarker --------------------------------------------------------------------


def test_the_most_prominent_person_is_the_largest_box_times_score() -> None:
    big_unsure = Detection(box=(0, 0, 100, 200), score=0.3)  # 20000 * 0.3 = 6000
    small_sure = Detection(box=(0, 0, 60, 120), score=0.95)  # 7200 * 0.95 = 6840
    big_sure = Detection(box=(0, 0, 100, 200), score=0.9)
    assert gperson.most_prominent([big_unsure, small_sure]) is small_sure
    assert gperson.most_prominent([small_sure, big_sure]) is big_sure


def test_crops_grow_by_the_margin_and_stay_in_the_photo() -> None:
    assert gperson.grown_box((100, 100, 200, 300), 1000, 1000, margin=0.1) == (80, 80, 220, 320)
    assert gperson.grown_box((5, 10, 95, 190), 100, 200, margin=0.1) == (0, 0, 100, 200)


def test_a_crops_observation_is_mapped_back_to_the_photo() -> None:
    found = standing_person(size=(100, 200), box=(0, 0, 100, 200))
    person = gperson.in_photo(found, (40, 30, 140, 230), (300, 260), box=(50, 40, 130, 220))
    np.testing.assert_allclose(person.landmarks[:, :2], found.landmarks[:, :2] + [40, 30])
    np.testing.assert_array_equal(person.landmarks[:, 2], found.landmarks[:, 2])
    np.testing.assert_array_equal(person.world, found.world)
    assert person.image_size == (300, 260) and person.box == (50, 40, 130, 220) and person.mask.shape == (260, 300)
    np.testing.assert_array_equal(person.mask[30:230, 40:140], found.mask)
    assert person.mask.sum() == found.mask.sum()


def test_the_detected_person_is_posed_on_its_crop_and_masked_by_the_segmenter() -> None:
    rgb = np.zeros((400, 600, 3), dtype=np.uint8)
    chosen = Detection(box=(300, 50, 420, 350), score=0.9)
    detector = FakePersonDetector([Detection(box=(20, 300, 60, 380), score=0.99), chosen])
    landmarker, segmenter = CropLandmarker(), FakePromptSegmenter()
    person = DetectedPersonLandmarker(detector, landmarker, segmenter).find_person(rgb)
    assert person is not None and isinstance(DetectedPersonLandmarker(detector, landmarker), PersonLandmarker)
    assert landmarker.seen == [(390, 210, 3)]  # the box grown by 15 % of its height (45 px), clipped at the top
    crop_view = standing_person(size=(210, 390), box=(0, 0, 210, 390))
    np.testing.assert_allclose(person.landmarks[:, :2], crop_view.landmarks[:, :2] + [255, 5])
    assert person.box == chosen.box and person.image_size == (600, 400)
    assert segmenter.asked == [[chosen.box]] and person.mask[50:350, 300:420].all() and person.mask.sum() == 120 * 300
    assert person.people == 2
    assert person.notes == ("2 people found; used the most prominent (the largest box x score, at (300, 50, 420, 350))",
                            "outside the photo: feet")


def test_no_person_detected_or_posed_means_none() -> None:
    rgb = np.zeros((100, 100, 3), dtype=np.uint8)
    assert DetectedPersonLandmarker(FakePersonDetector([]), CropLandmarker()).find_person(rgb) is None
    one = FakePersonDetector([Detection(box=(10, 10, 60, 90), score=0.8)])
    assert DetectedPersonLandmarker(one, FakePersonLandmarker(None)).find_person(rgb) is None
    alone = DetectedPersonLandmarker(one, CropLandmarker()).find_person(rgb)
    assert alone is not None and alone.people == 1 and alone.notes == ("outside the photo: feet",)
    assert DetectedPersonLandmarker(one, CropLandmarker()).name == "fake-detector+fake-crop-landmarker"


@pytest.mark.devdata
def test_posing_the_detected_crop_of_a_dev_photo_matches_posing_the_photo(dev_people: list[Path]) -> None:
    from pipeline.backends.mediapipe_person import MediapipePersonLandmarker

    path = next((p for p in dev_people if p.stem == "model_6"), dev_people[0])
    rgb = np.asarray(Image.open(path).convert("RGB"))
    mediapipe = MediapipePersonLandmarker()
    whole = mediapipe.find_person(rgb)
    assert whole is not None, path.name
    decoy = Detection(box=(0, 0, 40, 40), score=0.99)  # a small, sure "person" in a corner: not the one used
    detector = FakePersonDetector([Detection(box=whole.box, score=0.9), decoy])
    person = DetectedPersonLandmarker(detector, mediapipe).find_person(rgb)
    assert person is not None and person.people == 2 and person.box == whole.box
    seen = (whole.landmarks[:, 2] > 0.8) & (person.landmarks[:, 2] > 0.8)
    assert seen.sum() >= 12, path.name
    error = np.linalg.norm(person.landmarks[seen, :2] - whole.landmarks[seen, :2], axis=1)
    assert np.median(error) < 0.01 * rgb.shape[0] and error.max() < 0.05 * rgb.shape[0], (path.name, error.max())
    ours, theirs = person.mask > 0.5, whole.mask > 0.5
    overlap = (ours & theirs).sum() / max(1, (ours | theirs).sum())
    assert overlap > 0.8, (path.name, overlap)
