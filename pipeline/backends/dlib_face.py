"""The CPU default face embedder: mediapipe face detection, dlib's 5-point landmarks and 128-D ResNet identity.

Detection is mediapipe's full-range face detector rather than dlib's HOG: on the 28 dev photos (16 show
a face; the others are cut at the nose) it found all 16 faces and no other in ~6 ms, where HOG on a 640 px
copy found 14 in ~30 ms (it misses faces under ~100 px) and on the full 768x1024 photo found 16 plus a
false one in ~80 ms. Its boxes match HOG's within a few per cent (the boxes dlib's shape predictor was
trained on; embeddings from either box differ by <= 0.07). Landmarks and the embedding are dlib's, on the
full-resolution photo (~90 ms a face on 2 cores).

The dlib model files ship in `face-recognition-models`, found by path: importing that package needs
`pkg_resources`, gone from new setuptools. Models load on first use; calls into them hold a lock.
"""

from __future__ import annotations

import importlib.util
import threading
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.backends.installed import installed_version
from pipeline.backends.protocols import Face
from pipeline.backends.quiet import native_stderr_silenced
from pipeline.backends.table import BuildContext

SAME_PERSON = 0.6  # dlib's documented threshold on the L2 distance of two embeddings
MIN_SCORE = 0.5  # mediapipe detection confidence
MIN_FACE_PX = 32  # smaller faces give unreliable identities (dlib aligns to a 150 px chip)
MAX_FACES = 6  # each embedding costs ~90 ms: a crowd is cut to its largest faces
Box = tuple[int, int, int, int]


def model_dir() -> Path:
    """The folder holding dlib's .dat files inside the face-recognition-models wheel."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face-recognition-models is not installed (pip install face-recognition-models==0.3.0)")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class DlibFaceEmbedder:
    name = "dlib-resnet"
    threshold = SAME_PERSON

    def __init__(self, max_faces: int = MAX_FACES) -> None:
        self.max_faces = max_faces
        self._lock = threading.Lock()
        self._models: tuple[Any, Any, Any] | None = None

    @property
    def version(self) -> str:
        """dlib's version, and the detector's (it decides which faces get embedded)."""
        return f"{dlib_version()} (faces: mediapipe {package_version('mediapipe')})"

    def warm_up(self) -> None:
        """Load the detector and the two dlib models now (one call on a blank image)."""
        self.faces(np.full((256, 192, 3), 255, dtype=np.uint8))

    def faces(self, rgb: np.ndarray) -> list[Face]:
        import dlib

        rgb = checked_rgb(rgb)
        with self._lock:
            detector, shapes, resnet = self._load()
            found = detections(detector.process(rgb), rgb.shape[1], rgb.shape[0])[: self.max_faces]
            faces = []
            for box, score in found:
                shape = shapes(rgb, dlib.rectangle(*box))
                embedding = np.asarray(resnet.compute_face_descriptor(rgb, shape), dtype=np.float32)
                points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
                faces.append(Face(box=clipped(box, rgb.shape[1], rgb.shape[0]), landmarks=points,
                                  embedding=embedding, score=score))
        return faces

    def _load(self) -> tuple[Any, Any, Any]:
        """(mediapipe detector, dlib 5-point predictor, dlib ResNet), built on first use under the lock."""
        if self._models is None:
            import dlib
            import mediapipe as mp

            folder = model_dir()
            with native_stderr_silenced():  # TFLite's one-time start-up lines
                detector = mp.solutions.face_detection.FaceDetection(model_selection=1,
                                                                     min_detection_confidence=MIN_SCORE)
                detector.process(np.zeros((64, 64, 3), dtype=np.uint8))
            self._models = (
                detector,
                dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat")),
                dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat")),
            )
        return self._models


def dlib_version() -> str:
    return installed_version("dlib-bin", "dlib", missing="unknown")


def checked_rgb(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image of shape (H, W, 3), got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb)


def detections(result: Any, width: int, height: int) -> list[tuple[Box, float]]:
    """mediapipe's relative boxes -> pixel boxes (may reach past the frame) with scores, largest first;
    faces under MIN_FACE_PX are dropped."""
    found = []
    for detection in result.detections or []:
        b = detection.location_data.relative_bounding_box
        x0, y0 = round(b.xmin * width), round(b.ymin * height)
        x1, y1 = round((b.xmin + b.width) * width), round((b.ymin + b.height) * height)
        if min(x1 - x0, y1 - y0) >= MIN_FACE_PX:
            found.append(((x0, y0, x1, y1), float(detection.score[0])))
    return sorted(found, key=lambda f: (f[0][2] - f[0][0]) * (f[0][3] - f[0][1]), reverse=True)


def clipped(box: Box, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def build(ctx: BuildContext) -> DlibFaceEmbedder:
    return DlibFaceEmbedder()
