"""The CPU default face embedder: dlib's HOG face detector, 5-point landmarks and 128-D ResNet identity.

The model files ship in `face-recognition-models` (found by path: importing that package needs
`pkg_resources`, gone from new setuptools). Detection runs on a copy scaled to at most 640 px on its long
side (fast; faces in try-on photos are large), landmarks and the embedding on the full image.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.backends.protocols import Face

DETECT_SIDE = 640
SAME_PERSON = 0.6  # dlib's documented threshold on the L2 distance


def model_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face-recognition-models is not installed (pip install face-recognition-models)")
    return Path(spec.submodule_search_locations[0]) / "models"


class DlibFaceEmbedder:
    name = "dlib-resnet"
    threshold = SAME_PERSON

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: tuple[Any, Any, Any] | None = None

    @property
    def version(self) -> str:
        from importlib.metadata import version

        return f"{version('dlib-bin')} resnet_v1"

    def _load(self) -> tuple[Any, Any, Any]:
        if self._models is None:
            import dlib

            folder = model_dir()
            self._models = (
                dlib.get_frontal_face_detector(),
                dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat")),
                dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat")),
            )
        return self._models

    def faces(self, rgb: np.ndarray) -> list[Face]:
        import dlib

        with self._lock:
            detector, landmarks, resnet = self._load()
            scale = min(1.0, DETECT_SIDE / max(rgb.shape[:2]))
            small = rgb if scale == 1.0 else resize(rgb, scale)
            boxes, scores, _ = detector.run(small, 1, 0.0)
            found = []
            for box, score in zip(boxes, scores, strict=True):
                full = dlib.rectangle(int(box.left() / scale), int(box.top() / scale), int(box.right() / scale),
                                      int(box.bottom() / scale))
                shape = landmarks(rgb, full)
                embedding = np.asarray(resnet.compute_face_descriptor(rgb, shape), dtype=np.float32)
                points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
                found.append(Face(box=(full.left(), full.top(), full.right(), full.bottom()), landmarks=points,
                                  embedding=embedding, score=float(score)))
        return sorted(found, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), reverse=True)


def resize(rgb: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    height, width = rgb.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
