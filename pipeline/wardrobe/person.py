"""Is the "garment photo" really a photo of a person wearing clothes? A face at the top of the foreground
says so: a person's face crowns their silhouette, while a face printed on a T-shirt sits inside the garment.

OpenCV's frontal-face Haar cascade ships inside opencv itself (no download); it is loaded once per
process on first use, never at import, and guarded by a lock because one classifier is not safe to call
from several threads at once.

Photos of people cropped below the chin (or whose face the cascade misses) have no face to find; bare skin
says it instead: skin where a neck or face would be, at the top centre of the foreground, while skin is only
part of the foreground (a garment in a skin tone is skin-coloured all over). That is weaker evidence, so it
is a flag on the result, not a refusal.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

DETECT_SIDE = 512  # faces are looked for on a copy this size (long side), enough for a face 1/20 of the photo
NECK_SKIN = 0.5  # a wearer's skin covers at least this share of the foreground's top-centre (neck, chin) ...
SKIN_SHARE = (0.05, 0.5)  # ... and this share of the whole foreground: some of it, never most of it
_LOCK = threading.Lock()


@dataclass(frozen=True)
class WearerCheck:
    wearer: bool  # a face crowns the foreground: a person, not a garment on its own
    faces: int  # faces found anywhere (printed ones included)
    box: tuple[int, int, int, int] | None  # the wearer's face, in photo pixels
    bare_skin: bool = False  # no face crowns it, but skin shows where a wearer's neck would be (a flag)


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
    """A face whose centre lies in the top fifth of the foreground's box, within its width, is a wearer;
    without one, bare skin at the top centre (`shows_bare_skin`) is flagged."""
    faces = find_faces(rgb)
    solid = mask > 0.5
    rows, cols = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
    if rows.size == 0:
        return WearerCheck(False, len(faces), None)
    top, height, left, right = rows[0], rows[-1] - rows[0] + 1, cols[0], cols[-1]
    for box in faces:
        cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
        if cy <= top + 0.2 * height and left <= cx <= right:
            return WearerCheck(True, len(faces), box)
    return WearerCheck(False, len(faces), None, shows_bare_skin(rgb, solid))


def skin(rgb: np.ndarray) -> np.ndarray:
    """(H, W) bool: skin-coloured pixels (the usual YCrCb ranges, any skin tone, not too dark to tell)."""
    import cv2

    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    y, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    return (cr >= 136) & (cr <= 175) & (cb >= 80) & (cb <= 130) & (y >= 60)


def shows_bare_skin(rgb: np.ndarray, solid: np.ndarray) -> bool:
    """Skin covers the top-centre of the foreground (its top tenth, middle fifth: a neck) and part, not most,
    of the foreground."""
    rows, cols = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    box, bare = solid[y0:y1, x0:x1], skin(rgb[y0:y1, x0:x1]) & solid[y0:y1, x0:x1]
    h, w = box.shape
    neck = (slice(0, max(1, int(0.1 * h))), slice(int(0.4 * w), max(int(0.4 * w) + 1, int(0.6 * w))))
    neck_share = bare[neck].sum() / max(1, box[neck].sum())
    share = bare.sum() / max(1, box.sum())
    return bool(neck_share >= NECK_SKIN and SKIN_SHARE[0] <= share <= SKIN_SHARE[1])


WEARER_SKIN_CLOSE = 0.01  # of the photo's height: skin pixels this close join into one patch (a strap's gap)
WEARER_SKIN_MIN = 0.0005  # of the photo's pixels: a smaller skin-coloured patch is the garment's own colour


def wearer_skin(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: a wearer's bare skin inside the garment's mask (arms, neck, chest, legs of a model the garment
    is shown on): skin-coloured patches of the mask that reach the band along its outline (as wide as the closing:
    the mask's edge itself is often a darker, antialiased rim). A wearer's skin runs out to the silhouette; a
    skin-coloured print or a beige panel inside the garment does not, and is kept."""
    import cv2

    solid = mask > 0.5
    bare = (skin(rgb) & solid).astype(np.uint8)
    size = max(3, int(WEARER_SKIN_CLOSE * rgb.shape[0])) | 1
    bare = cv2.morphologyEx(bare, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    bare &= solid.astype(np.uint8)
    outline = solid & ~(cv2.erode(solid.astype(np.uint8), np.ones((size, size), np.uint8)) > 0)  # the edge's band
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bare, connectivity=8)
    reaching = np.unique(labels[outline & (labels > 0)])
    big = reaching[stats[reaching, cv2.CC_STAT_AREA] >= WEARER_SKIN_MIN * solid.size]
    return np.isin(labels, big)


WEARER_PART_MIN = 0.1  # with the wearer's skin out, a mask part under this share of the largest is what they hold
WEARER_STRAND = 0.012  # of the photo's height: thinner strands left between skin (a ribbon, a chain) are dropped


def without_wearer(rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    """The mask without a wearer's bare skin (`wearer_skin`), without the thin strands that leaves (a bracelet's
    ribbon, a necklace, a strap: an opening WEARER_STRAND wide) and without what is then cut off from the garment
    (a bag, the fingers round it: parts under WEARER_PART_MIN of the largest); and the share of the photo taken
    out."""
    import cv2

    solid = mask > 0.5
    kept = (solid & ~wearer_skin(rgb, mask)).astype(np.uint8)
    size = max(3, int(WEARER_STRAND * rgb.shape[0])) | 1
    kept = cv2.morphologyEx(kept, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(kept, connectivity=8)
    if count > 2:
        areas = stats[1:, cv2.CC_STAT_AREA]
        kept = np.isin(labels, 1 + np.flatnonzero(areas >= WEARER_PART_MIN * areas.max())).astype(np.uint8)
    removed = solid & (kept == 0)
    return np.where(removed, 0, mask).astype(mask.dtype), float(removed.mean())
