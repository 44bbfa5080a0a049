"""The photo's classical parsing, for photo.png: which pixel is torso, arm, hand, leg or head (the fitted body's part
map in the photo's frame, extended by nearest part over the person mask), which is skin and which clothes (Lab
distance to the skin tone), and the old garment the new one replaces. `pipeline.fitting.photo` composites on it,
`bench.look` measures with it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.fitting import regions
from pipeline.geometry import BodyMesh

if TYPE_CHECKING:
    from pipeline.render.raster import Raster

PART = {name: i for i, name in enumerate(regions.PARTS)}
UPPER = (PART["torso"], PART["upper_arm"], PART["forearm"])
LOWER = (PART["thigh"], PART["shin"])
ARMS = (PART["upper_arm"], PART["forearm"])
KEEP = (PART["head"], PART["hand"], PART["foot"])
SKIN_DELTA = 22.0  # Lab distance (chroma weighted) from the skin tone under which a pixel counts as skin
CLOTHES_DELTA = 34.0  # ... and above which it counts as clothes (between the two: shadowed skin, kept as it is)


@dataclass(frozen=True)
class Parsing:
    """Per-pixel labels of the photo (all (H, W))."""

    part: np.ndarray  # int: index into regions.PARTS, -1 off the person
    rendered: np.ndarray  # bool: the fitted body covers the pixel
    skin: np.ndarray  # bool: skin-coloured, on the person
    clothes: np.ndarray  # bool: clearly not skin-coloured, on the person
    person: np.ndarray  # bool: the person mask
    body_iou: float  # the fitted body's silhouette against the person mask


def lab8(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) float32 OpenCV 8-bit Lab (L 0..255, a and b offset by 128) of uint8 RGB: the scale the parsing's
    thresholds are in."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2Lab).astype(np.float32)


def skin_delta(photo: np.ndarray, tone: np.ndarray) -> np.ndarray:
    """(H, W) float: each pixel's Lab distance from the skin tone, lightness weighted down (shading varies it)."""
    lab = lab8(photo)
    ref = lab8(np.asarray(tone, np.float64).reshape(1, 1, 3).clip(0, 255).astype(np.uint8))[0, 0]
    return np.sqrt(0.25 * (lab[..., 0] - ref[0]) ** 2 + (lab[..., 1] - ref[1]) ** 2 + (lab[..., 2] - ref[2]) ** 2)


def parse_photo(photo: np.ndarray, person_mask: np.ndarray, body: BodyMesh, vertex_part: np.ndarray,
                raster: Raster, skin_tone: np.ndarray) -> Parsing:
    """The photo's parts and skin (see the module docstring), from the fitted body as the photo's camera sees it
    (`raster`)."""
    import cv2

    face_part = np.asarray(vertex_part)[np.asarray(body.faces)[:, 0]]
    rendered = raster.mask
    part = np.where(rendered, face_part[np.maximum(raster.triangle, 0)], -1)
    person = person_mask > 0.5
    # the person past the body (loose clothes, hair): the nearest body pixel's part
    if rendered.any():
        _, labels = cv2.distanceTransformWithLabels((~rendered).astype(np.uint8), cv2.DIST_L2, 5,
                                                    labelType=cv2.DIST_LABEL_PIXEL)
        rows, cols = np.nonzero(rendered)
        lookup = np.zeros(labels.max() + 1, dtype=np.int64)
        lookup[labels[rows, cols]] = part[rows, cols]
        nearest = lookup[labels]
        part = np.where(person & ~rendered, nearest, np.where(rendered, part, -1))
    union = person | rendered
    iou = float((person & rendered).sum() / union.sum()) if union.any() else 0.0
    delta = skin_delta(photo, skin_tone)
    return Parsing(part=part, rendered=rendered, skin=(delta < SKIN_DELTA) & person,
                   clothes=(delta > CLOTHES_DELTA) & person, person=person, body_iou=iou)


def old_garment(parsing: Parsing, category: str, hip_y: float | None) -> np.ndarray:
    """(H, W) bool: the person's clothes of the kind the new garment replaces (not skin, head, hands, feet)."""
    clothes = parsing.clothes & ~np.isin(parsing.part, KEEP) & (parsing.part >= 0)
    rows = np.arange(parsing.part.shape[0])[:, None]
    below_hip = rows > hip_y if hip_y is not None else np.zeros_like(clothes)
    upper = np.isin(parsing.part, UPPER) & ~(below_hip & (parsing.part == PART["torso"]))
    lower = np.isin(parsing.part, LOWER) | (below_hip & (parsing.part == PART["torso"]))
    zone = {"upper": upper, "lower": lower, "full": upper | lower}[category]
    return clothes & zone


def skin_range(rgb: np.ndarray) -> np.ndarray:
    """(...) bool: uint8 RGB pixels (..., 3) in the usual YCrCb skin range (any skin tone; not a navy jacket's
    highlights, black hair or a cap)."""
    import cv2

    if not np.asarray(rgb).size:  # nothing to test (OpenCV refuses an empty image)
        return np.zeros(np.asarray(rgb).shape[:-1], dtype=bool)
    flat = np.ascontiguousarray(rgb, np.uint8).reshape(-1, 1, 3)
    ycrcb = cv2.cvtColor(flat, cv2.COLOR_RGB2YCrCb).reshape(-1, 3)
    inside = (ycrcb[:, 1] >= 133) & (ycrcb[:, 1] <= 180) & (ycrcb[:, 2] >= 77) & (ycrcb[:, 2] <= 135)
    return inside.reshape(np.asarray(rgb).shape[:-1])


def colour_centres(lab: np.ndarray, k: int = 3) -> np.ndarray:
    """(<= k, 3) Lab centres of (N, 3) Lab pixels (none for fewer than 50)."""
    from pipeline.wardrobe.appearance import kmeans

    if len(lab) < 50:
        return np.zeros((0, 3), np.float32)
    samples = np.ascontiguousarray(lab[:: max(1, len(lab) // 20000)], dtype=np.float32)
    _, centres = kmeans(samples, min(k, len(samples)), np.random.default_rng(0), attempts=2, max_iter=20, eps=0.5)
    return np.asarray(centres, np.float32)


def nearest(lab: np.ndarray, centres: np.ndarray) -> np.ndarray:
    if not len(centres):
        return np.full(len(lab), np.inf, dtype=np.float32)
    return np.linalg.norm(lab[:, None, :] - centres[None, :, :], axis=2).min(axis=1)
