"""The GPU person detector: an ultralytics YOLO model (e.g. yolo11x.pt), people only (COCO class 0).

The weights are a local file (the weights volume); `YOLO(path)` reads it and nothing else. ultralytics would
download a missing `*.pt` by name, so the file is checked first. Before ultralytics is imported, its
environment is set: `YOLO_OFFLINE=True` (ultralytics compares the lowercased value with "true": "1" does
nothing), `YOLO_CONFIG_DIR` a writable folder (it writes settings.json there), and settings sync is turned off.

ultralytics needs torchvision; the PyPI torchvision that matches CPU torch 2.13 is a CUDA build that fails to
import next to it (`operator torchvision::nms does not exist`), so ultralytics lives only on the GPU image.

`detect_batch` runs several photos as one batch (ultralytics letterboxes each, stacks them, one forward and
one NMS), in fp16 on a GPU. Its results become `Detection`s through `detections`, a plain function.
Licence: Ultralytics YOLO is AGPL-3.0 or an enterprise licence (docs/gpu.md).
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.backends.installed import installed_version
from pipeline.backends.protocols import Detection
from pipeline.backends.table import BuildContext

PERSON = 0  # COCO class id
IOU = 0.7  # ultralytics' NMS default


class YoloPersonDetector:
    name = "ultralytics-yolo"

    def __init__(self, weights: Path, device: str | None = None, conf: float = 0.25,
                 config_dir: Path | None = None) -> None:
        self.weights = Path(weights)
        if not self.weights.is_file():
            raise FileNotFoundError(f"no YOLO weights at {self.weights}: fetch them ahead of time (never at run time)")
        self.device = device
        self.conf = conf
        self.config_dir = Path(config_dir) if config_dir else Path(tempfile.gettempdir()) / "dropfit-ultralytics"
        self._lock = threading.Lock()
        self._model: Any = None

    @property
    def version(self) -> str:
        return f"ultralytics {installed_version('ultralytics')} ({self.weights.name})"

    def warm_up(self) -> None:
        """Load the model now (a container's start-up), not on the first call."""
        self.load()

    def load(self) -> None:
        """Build the model now (a container's start-up), not on the first photo."""
        with self._lock:
            self._load()

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return self.detect_batch([rgb])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """Every person in each photo, most confident first; the photos run as one batch."""
        if not images:
            return []
        batch = [to_bgr(rgb) for rgb in images]
        with self._lock:
            model, device = self._load()
            results = model.predict(source=batch, conf=self.conf, iou=IOU, classes=[PERSON], device=device,
                                    half=device.startswith("cuda"), verbose=False)
        return [detections(*result_arrays(result), width=rgb.shape[1], height=rgb.shape[0], min_score=self.conf)
                for result, rgb in zip(results, images, strict=True)]

    def _load(self) -> tuple[Any, str]:
        """(the YOLO model, its device), built on first use (called under the lock)."""
        if self._model is None:
            self.config_dir.mkdir(parents=True, exist_ok=True)
            os.environ["YOLO_OFFLINE"] = "True"
            os.environ.setdefault("YOLO_CONFIG_DIR", str(self.config_dir))
            import torch
            from ultralytics import YOLO, settings

            settings.update({"sync": False})
            device = chosen_device(self.device, torch.cuda.is_available())
            model = YOLO(str(self.weights))
            model.to(device)
            self._model = (model, device)
        return self._model


# ---- pre- and post-processing: plain numpy ----------------------------------------------------------------


def chosen_device(requested: str | None, cuda_available: bool) -> str:
    """The requested torch device, or the first GPU when there is one, else the CPU."""
    if requested:
        return requested
    return "cuda:0" if cuda_available else "cpu"


def to_bgr(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> a contiguous BGR copy: ultralytics takes numpy images as OpenCV's BGR."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image of shape (H, W, 3), got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb[:, :, ::-1])


def result_arrays(result: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An ultralytics `Results` -> (boxes (N, 4) xyxy px, scores (N,), classes (N,)) as numpy."""
    boxes = result.boxes
    return as_numpy(boxes.xyxy).reshape(-1, 4), as_numpy(boxes.conf).reshape(-1), as_numpy(boxes.cls).reshape(-1)


def as_numpy(values: Any) -> np.ndarray:
    """A torch tensor (any device, any float type) or array-like -> float32 numpy."""
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


def detections(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, width: int, height: int,
               min_score: float = 0.0) -> list[Detection]:
    """People (class 0) at or above `min_score`, boxes rounded and clipped to the photo (empty ones dropped),
    most confident first."""
    found = []
    for box, score, cls in zip(np.asarray(boxes).reshape(-1, 4), np.ravel(scores), np.ravel(classes), strict=True):
        if int(cls) != PERSON or float(score) < min_score:
            continue
        x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
        x1, y1 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
        if x1 > x0 and y1 > y0:
            found.append(Detection(box=(x0, y0, x1, y1), score=float(score), label="person"))
    return sorted(found, key=lambda d: d.score, reverse=True)


def build(ctx: BuildContext) -> YoloPersonDetector:
    return YoloPersonDetector(ctx.weights() / "yolo11n.pt")
