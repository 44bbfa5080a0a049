"""The CPU default person landmarker: mediapipe 0.10.21's legacy Pose (landmarks, world landmarks, mask).

Pose is single-person, so the number of people comes from face detection, and with several the most
prominent (the largest face) is cropped out and posed alone. Models ship inside the wheel; the graphs are
built on first use and guarded by a lock (one graph serves every thread of the process).
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from typing import Any

import numpy as np

from pipeline.backends.protocols import PersonObservation
from pipeline.backends.quiet import native_stderr_silenced

MIN_FACE_SCORE = 0.6
EDGE = 2.0  # px: a landmark this far outside the frame is not visible, whatever mediapipe says


class MediapipePersonLandmarker:
    name = "mediapipe-pose"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pose: Any = None
        self._faces: Any = None
        self._spoke = False  # the first landmarks also print a one-time native warning

    @property
    def version(self) -> str:
        from importlib.metadata import version

        return version("mediapipe")

    def _models(self) -> tuple[Any, Any]:
        if self._pose is None:
            import mediapipe as mp

            with native_stderr_silenced():  # TFLite's start-up lines; the first run builds the graphs
                pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True)
                faces = mp.solutions.face_detection.FaceDetection(model_selection=1,
                                                                  min_detection_confidence=MIN_FACE_SCORE)
                blank = np.zeros((64, 64, 3), dtype=np.uint8)
                pose.process(blank)
                faces.process(blank)
            self._pose, self._faces = pose, faces
        return self._pose, self._faces

    def find_person(self, rgb: np.ndarray) -> PersonObservation | None:
        with self._lock:
            pose, faces = self._models()
            boxes = face_boxes(faces.process(rgb), rgb.shape[1], rgb.shape[0])
            crop, notes = (0, 0, rgb.shape[1], rgb.shape[0]), ()
            if len(boxes) > 1:
                crop = person_crop(boxes, rgb.shape[1], rgb.shape[0])
                side = "left" if (crop[0] + crop[2]) / 2 < rgb.shape[1] / 2 else "right"
                notes = (f"{len(boxes)} people found; used the most prominent (the largest face, on the {side})",)
            x0, y0, x1, y1 = crop
            with native_stderr_silenced() if not self._spoke else nullcontext():
                result = pose.process(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
            self._spoke = self._spoke or result.pose_landmarks is not None  # its one-time warnings are out
        if result.pose_landmarks is None:
            return None
        return observation(result, rgb.shape[1], rgb.shape[0], crop, max(len(boxes), 1), notes)


def face_boxes(result: Any, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Face boxes in pixels, largest first."""
    boxes = []
    for detection in result.detections or []:
        b = detection.location_data.relative_bounding_box
        boxes.append((int(b.xmin * width), int(b.ymin * height), int((b.xmin + b.width) * width),
                      int((b.ymin + b.height) * height)))
    return sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)


def person_crop(boxes: list[tuple[int, int, int, int]], width: int, height: int) -> tuple[int, int, int, int]:
    """A crop around the largest face's person (a body is ~3 face widths wide), stopping short of the
    neighbouring faces so the pose model sees one person."""
    x0, y0, x1, y1 = boxes[0]
    cx, fw = (x0 + x1) / 2, x1 - x0
    left, right = cx - 2.2 * fw, cx + 2.2 * fw
    for ox0, _, ox1, _ in boxes[1:]:
        other = (ox0 + ox1) / 2
        if other < cx:
            left = max(left, (other + cx) / 2)
        else:
            right = min(right, (other + cx) / 2)
    top = max(0, int(y0 - 0.8 * (y1 - y0)))
    return max(0, int(left)), top, min(width, int(right)), height


def observation(result: Any, width: int, height: int, crop: tuple[int, int, int, int], people: int,
                notes: tuple[str, ...]) -> PersonObservation:
    x0, y0, x1, y1 = crop
    cw, ch = x1 - x0, y1 - y0
    marks = np.array([[p.x * cw + x0, p.y * ch + y0, p.visibility] for p in result.pose_landmarks.landmark])
    x, y = marks[:, 0], marks[:, 1]
    outside = (x < -EDGE) | (x > width + EDGE) | (y < -EDGE) | (y > height + EDGE)
    marks[outside, 2] = 0.0
    world = np.array([[p.x, p.y, p.z] for p in result.pose_world_landmarks.landmark])
    mask = np.zeros((height, width), dtype=np.float32)
    if result.segmentation_mask is not None:
        mask[y0:y1, x0:x1] = result.segmentation_mask
    return PersonObservation(image_size=(width, height), landmarks=marks, world=world, mask=mask,
                             box=mask_box(mask, marks, crop), people=people, notes=notes)


def mask_box(mask: np.ndarray, marks: np.ndarray, crop: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask > 0.5)
    if len(xs) == 0:
        seen = marks[marks[:, 2] > 0.5]
        if len(seen) == 0:
            return crop
        return (int(seen[:, 0].min()), int(seen[:, 1].min()), int(seen[:, 0].max()), int(seen[:, 1].max()))
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
