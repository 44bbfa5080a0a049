"""Is the "garment photo" really a photo of a person wearing clothes? A face at the top of the foreground
says so: a person's face crowns their silhouette, while a face printed on a T-shirt sits inside the garment.

OpenCV's frontal-face Haar cascade ships inside opencv itself (no download); it is loaded once per
process on first use, never at import, and guarded by a lock because one classifier is not safe to call
from several threads at once. Photos of people cropped below the chin are not caught (no face to find).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

DETECT_SIDE = 512  # faces are looked for on a copy this size (long side), enough for a face 1/20 of the photo
_LOCK = threading.Lock()


@dataclass(frozen=True)
class WearerCheck:
    wearer: bool  # a face crowns the foreground: a person, not a garment on its own
    faces: int  # faces found anywhere (printed ones included)
    box: tuple[int, int, int, int] | None  # the wearer's face, in photo pixels


@cache
def _cascade() -> Any:
    import cv2

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")  # type: ignore[attr-defined]
    if cascade.empty():
        raise RuntimeError("opencv's frontal-face cascade did not load")
    return cascade


def find_faces(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Face boxes (x0, y0, x1, y1) in photo pixels."""
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(h, w))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        grey = cv2.resize(grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    side = max(20, int(0.04 * max(grey.shape)))
    with _LOCK:
        found = _cascade().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
    return [tuple(int(round(v / scale)) for v in (x, y, x + fw, y + fh)) for x, y, fw, fh in found]  # type: ignore[misc]


def check_wearer(rgb: np.ndarray, mask: np.ndarray) -> WearerCheck:
    """A face whose centre lies in the top fifth of the foreground's box, within its width, is a wearer."""
    faces = find_faces(rgb)
    solid = mask > 0.5
    rows, cols = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
    if not faces or rows.size == 0:
        return WearerCheck(False, len(faces), None)
    top, height, left, right = rows[0], rows[-1] - rows[0] + 1, cols[0], cols[-1]
    for box in faces:
        cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
        if cy <= top + 0.2 * height and left <= cx <= right:
            return WearerCheck(True, len(faces), box)
    return WearerCheck(False, len(faces), None)
