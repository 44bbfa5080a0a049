"""The GPU face embedder: InsightFace's SCRFD detector and ArcFace recognizer (e.g. buffalo_l), 512-D identities.

Loading: `FaceAnalysis(name=<folder>)` routes the folder's ONNX files by their signatures (5+ outputs: the
detector; a square 112 input: the recognizer) and never downloads when `name` is an existing folder. The folder
is checked before insightface sees it: a missing one would make insightface fetch a model pack by that name.
ONNX Runtime runs on CUDA when it has it, else on the CPU; the models run in the precision stored in their
files (fp32 for buffalo_l; on a GPU a face costs a few ms, so fp16 is not worth a converted copy).

The CPU fall-back is never silent where CUDA is meant (`cuda_expected`): when CUDA was asked for, or a GPU is
present and the GPU build of ONNX Runtime is installed (`onnxruntime-gpu`, which insightface's dependency on the
CPU `onnxruntime` can shadow, both being the module `onnxruntime`), loading fails unless every session runs on
the CUDA provider, naming what the runtime offers. A GPU next to only the CPU runtime (a machine set up without
onnxruntime-gpu) runs on the CPU with a RuntimeWarning; asking for ["CPUExecutionProvider"] says it is meant.

Per photo: the detector runs once (insightface's own pre- and post-processing: letterbox to `det_size`,
anchors, NMS); the faces are cut out with the ArcFace 5-point alignment (a plain function here, the same
similarity fit insightface uses) and embedded together in one batch. Embeddings are L2-normalised, so the
pipeline's L2 distance is a monotone function of the cosine similarity insightface users threshold:
L2 = sqrt(2 - 2 cos). `SAME_PERSON` = 1.10 stands for cosine ~0.40, the cut commonly used with buffalo_l's
w600k_r50; it is a starting point that must be calibrated on real weights and the dev photos (same person
across photos vs different people), as dlib's 0.6 was.

Licence: buffalo_l's weights are for non-commercial research only (docs/gpu.md).
"""

from __future__ import annotations

import math
import threading
import warnings
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.backends.protocols import Face
from pipeline.backends.table import BuildContext

COSINE_SAME_PERSON = 0.40  # insightface's usual cut on the cosine similarity of two ArcFace embeddings
SAME_PERSON = 1.10  # the same cut on the L2 distance of the normalised embeddings: sqrt(2 - 2 * 0.40) = 1.095
MIN_SCORE = 0.5  # detector confidence
MIN_FACE_PX = 32  # smaller faces give unreliable identities
MAX_FACES = 6
CHIP = 112  # ArcFace's input size
ARCFACE_POINTS = np.array(  # where ArcFace expects the 5 points (eyes, nose tip, mouth corners) in a 112 chip
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64)
PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
CUDA = "CUDAExecutionProvider"
GPU_RUNTIME = "onnxruntime-gpu"  # the distribution of ONNX Runtime's CUDA build
Box = tuple[int, int, int, int]


class InsightFaceEmbedder:
    name = "insightface"
    threshold = SAME_PERSON

    def __init__(self, model_dir: Path, providers: list[str] | None = None,
                 det_size: tuple[int, int] = (640, 640), max_faces: int = MAX_FACES) -> None:
        self.model_dir = Path(model_dir)
        self.files = model_files(self.model_dir)
        self.providers = providers
        self.det_size = (int(det_size[0]), int(det_size[1]))
        self.max_faces = max_faces
        self._lock = threading.Lock()
        self._models: tuple[Any, Any] | None = None
        self.providers_used: tuple[str, ...] = ()  # what ONNX Runtime's sessions run on, once loaded

    @property
    def version(self) -> str:
        return f"insightface {package_version('insightface')} ({self.model_dir.name}: {', '.join(self.files)})"

    def warm_up(self) -> None:
        """Load the model now (a container's start-up), not on the first call."""
        self.load()

    def load(self) -> None:
        """Build the ONNX sessions now (a container's start-up), not on the first photo."""
        with self._lock:
            self._load()

    def faces(self, rgb: np.ndarray) -> list[Face]:
        bgr = to_bgr(rgb)
        height, width = bgr.shape[:2]
        with self._lock:
            detector, recognizer = self._load()
            boxes, points = detector.detect(bgr, max_num=0)
            keep = largest_first(boxes, self.max_faces)
            if len(keep) == 0:
                return []
            if points is None:
                raise RuntimeError(f"the detector in {self.model_dir} gives no 5-point landmarks to align faces by")
            embeddings = recognizer.get_feat(aligned_crops(bgr, points[keep]))
        return to_faces(boxes[keep], points[keep], np.asarray(embeddings), width, height)

    def _load(self) -> tuple[Any, Any]:
        """(SCRFD detector, ArcFace recognizer), built on first use (called under the lock)."""
        if self._models is None:
            import onnxruntime
            from insightface.app import FaceAnalysis

            available = onnxruntime.get_available_providers()
            providers = chosen_providers(self.providers, available)
            app = FaceAnalysis(name=str(self.model_dir), root=str(self.model_dir), providers=providers,
                               allowed_modules=["detection", "recognition"])
            if "recognition" not in app.models:
                raise RuntimeError(f"{self.model_dir} holds no recognition model (a square 112 input, one output)")
            ctx_id = 0 if providers[0] == CUDA else -1
            app.prepare(ctx_id=ctx_id, det_thresh=MIN_SCORE, det_size=self.det_size)
            models = (app.models["detection"], app.models["recognition"])
            used = sorted({p for model in models for p in model.session.get_providers()})
            check_providers(self.providers, used, available, gpu_present(), gpu_runtime_installed(),
                            onnxruntime.__version__)
            self.providers_used = tuple(used)
            self._models = models
        return self._models


# ---- pre- and post-processing: plain numpy ----------------------------------------------------------------


def model_files(model_dir: Path) -> list[str]:
    """The ONNX files of a model folder, sorted; an error when there are none (never a download)."""
    files = sorted(p.name for p in model_dir.glob("*.onnx")) if model_dir.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no InsightFace model in {model_dir}: expected a folder of .onnx files "
                                "(e.g. buffalo_l's det_10g.onnx and w600k_r50.onnx), fetched ahead of time")
    return files


def chosen_providers(requested: list[str] | None, available: list[str]) -> list[str]:
    """The requested ONNX Runtime providers, or CUDA then CPU, keeping those this runtime has."""
    wanted = list(requested) if requested else list(PREFERRED_PROVIDERS)
    chosen = [p for p in wanted if p in available]
    if not chosen:
        raise RuntimeError(f"none of the providers {wanted} is available (ONNX Runtime has {available})")
    return chosen


def cuda_expected(requested: list[str] | None, gpu: bool, gpu_runtime: bool) -> bool:
    """Must the sessions run on CUDA? When it was asked for; else, when nothing was asked, where there is a GPU
    and the GPU build of ONNX Runtime is installed (or is what imported)."""
    if requested:
        return CUDA in requested
    return gpu and gpu_runtime


def check_providers(requested: list[str] | None, used: list[str], available: list[str], gpu: bool,
                    gpu_installed: bool, runtime_version: str) -> None:
    """Fail when the sessions run without CUDA although it is expected (`cuda_expected`); warn when a GPU is
    present but only the CPU runtime is installed and nothing was asked for."""
    gpu_runtime = gpu_installed or CUDA in available
    if CUDA in used or not cuda_expected(requested, gpu, gpu_runtime):
        if gpu and not gpu_runtime and not requested:
            warnings.warn(f"InsightFace runs on the CPU next to a GPU: ONNX Runtime {runtime_version} here is the "
                          f"CPU build (providers {available}); install {GPU_RUNTIME} for CUDA, or ask for "
                          "CPUExecutionProvider to say the CPU is meant", RuntimeWarning, stacklevel=3)
        return
    why = "CUDA was asked for" if requested else f"a GPU is present and {GPU_RUNTIME} is installed"
    raise RuntimeError(f"InsightFace would run on the CPU although {why}: its sessions use {used}, ONNX Runtime "
                       f"{runtime_version} offers {available}. If the CPU onnxruntime package shadows "
                       f"{GPU_RUNTIME} (insightface requires the CPU one; both install the module onnxruntime), "
                       f"`pip uninstall -y onnxruntime` and `pip install --force-reinstall --no-deps {GPU_RUNTIME}`; "
                       "if CUDA is offered but unused, its CUDA or cuDNN libraries are missing")


def gpu_present() -> bool:
    """Does torch see a CUDA GPU here? (False where torch is not installed.)"""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def gpu_runtime_installed() -> bool:
    try:
        package_version(GPU_RUNTIME)
    except PackageNotFoundError:
        return False
    return True


def l2_threshold(cosine: float) -> float:
    """The L2 distance between unit vectors whose cosine similarity is `cosine`."""
    return math.sqrt(max(0.0, 2.0 - 2.0 * cosine))


def to_bgr(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> a contiguous BGR copy, the channel order insightface and OpenCV expect."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image of shape (H, W, 3), got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb[:, :, ::-1])


def largest_first(boxes: np.ndarray, max_faces: int, min_px: int = MIN_FACE_PX) -> np.ndarray:
    """Indices of the detections (N, 5: x0, y0, x1, y1, score) at least `min_px` on both sides, largest area
    first, at most `max_faces`."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=int)
    sides = boxes[:, 2:4] - boxes[:, 0:2]
    big = np.flatnonzero(sides.min(axis=1) >= min_px)
    order = np.argsort(-(sides[big, 0] * sides[big, 1]), kind="stable")
    return big[order][:max_faces]


def alignment(points: np.ndarray, size: int = CHIP) -> np.ndarray:
    """(2, 3) similarity transform taking the 5 detected points onto ArcFace's template in a `size` chip: the
    least-squares fit (Umeyama) that insightface's `face_align.estimate_norm` makes."""
    src = np.asarray(points, dtype=np.float64).reshape(5, 2)
    dst = ARCFACE_POINTS * (size / CHIP)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    signs = np.ones(2)
    if np.linalg.det(covariance) < 0:
        signs[1] = -1.0
    u, singular, vt = np.linalg.svd(covariance)
    rotation = u @ np.diag(signs) @ vt
    scale = float(singular @ signs) / float(src_c.var(axis=0).sum())
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def aligned_crops(bgr: np.ndarray, points: np.ndarray, size: int = CHIP) -> list[np.ndarray]:
    """One aligned (size, size, 3) BGR chip per face's 5 points, black outside the photo."""
    import cv2

    return [cv2.warpAffine(bgr, alignment(p, size), (size, size), borderValue=0.0) for p in points]


def normalised(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, float32 (a zero row stays zero)."""
    vectors = np.asarray(embeddings, dtype=np.float32).reshape(len(embeddings), -1)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def to_faces(boxes: np.ndarray, points: np.ndarray, embeddings: np.ndarray, width: int, height: int) -> list[Face]:
    """Detector rows (x0, y0, x1, y1, score), their (5, 2) points and raw embeddings -> Faces, in the given
    order, boxes rounded and clipped to the photo, embeddings normalised."""
    units = normalised(embeddings)
    return [Face(box=clipped_box(row[:4], width, height), landmarks=np.asarray(p, dtype=np.float32).reshape(5, 2),
                 embedding=units[i], score=float(row[4])) for i, (row, p) in enumerate(zip(boxes, points, strict=True))]


def clipped_box(box: np.ndarray, width: int, height: int) -> Box:
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def build(ctx: BuildContext) -> InsightFaceEmbedder:
    return InsightFaceEmbedder(ctx.weights() / "models/buffalo_l")
