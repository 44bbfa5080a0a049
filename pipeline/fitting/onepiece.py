"""photo.png under a new top when the old garment was a one-piece (a dress, a long coat): its part below the hips.

A top replaces the torso above the hips and the arms; the old garment's part over the hips and legs stays the
photo's. When that part is the same garment (a dress's skirt, a coat's tails) it would show under the new top as
a skirt or shorts in the old garment's colours. It is found as the clothes below the hips in the old garment's
main colours above the waist (the bottom of its parsed region can be another garment's top: a crop top's
trousers' waistband), joined to it, that cover the gap between the legs (a skirt or a coat's tails do, trousers
do not; with the legs together, that stand well past the fitted legs). It becomes a plain skirt: the first neutral
colour of `PLAIN_LOWER` clearly unlike both the old and the new garment, shaded by the photo's own light there
(its folds), the silhouette kept. The record says that this was assumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.fitting.parsing import KEEP, LOWER, PART, Parsing, colour_centres, lab8, nearest

ONE_PIECE_DELTA = 14.0  # Lab distance to the old garment's colours for clothes below the hips to be the same garment
MAIN_SHARE = 0.25  # the old garment's colours are its colour clusters holding at least this share of it
BETWEEN_LEGS_SHARE = 0.5  # ... and this share of the gap between the legs covered by it: a skirt, not trousers
MIN_BETWEEN_LEGS_PX = 80  # fewer gap pixels than this (legs together or crossed): the outline is the evidence ...
PAST_LEGS_SHARE = 0.3  # ... a skirt: this share of the part below the hips stands past the fitted body
THIGH_BAND = 0.5  # the gap is looked at from the hips down this share of the shoulder-to-hip height
MIN_ONE_PIECE_SHARE = 0.002  # a one-piece's part below the hips smaller than this share of the photo is left alone
DISTINCT_DELTA = 30.0  # the plain lower garment's colour is at least this far (Lab) from the old and new garments'
PLAIN_LOWER: tuple[tuple[str, tuple[int, int, int]], ...] = (  # neutral lower garments, in order of preference
    ("charcoal", (58, 58, 62)), ("navy", (38, 48, 78)), ("black", (28, 28, 30)), ("denim blue", (72, 96, 132)),
    ("khaki", (176, 160, 130)), ("stone grey", (150, 150, 146)),
)


@dataclass(frozen=True)
class OnePiece:
    below: np.ndarray  # (H, W) bool: the one-piece's pixels below the hips that the new top leaves
    colour: np.ndarray  # (3,) float32 RGB: the plain lower garment they become
    name: str  # its colour's name, for the record


def lower_zone(parsing: Parsing, hip_y: float) -> np.ndarray:
    """(H, W) bool: the person over the hips and legs (the legs, the torso below the hips, and what stands past the
    body below the hips beside the arms: a skirt held out), not the feet or the fitted hands."""
    rows = np.arange(parsing.part.shape[0])[:, None]
    below_hip = rows > hip_y
    legs = np.isin(parsing.part, LOWER) | ((parsing.part == PART["torso"]) & below_hip)
    held = below_hip & ~parsing.rendered & np.isin(parsing.part, (PART["hand"], PART["forearm"]))
    return (legs & ~np.isin(parsing.part, KEEP) | held) & parsing.person


def joined_to(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of `mask` in a connected piece of `mask | seed` that touches `seed`."""
    import cv2

    count, labels = cv2.connectedComponents((mask | seed).astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(mask)
    touching = np.unique(labels[seed])
    return np.isin(labels, touching[touching > 0]) & mask


def between_legs(parsing: Parsing, hip_y: float, shoulder_y: float) -> np.ndarray:
    """(H, W) bool: on the rows just below the hips, the pixels between the fitted legs that the body does not
    cover (the gap between the thighs: background under trousers, fabric under a skirt)."""
    height, width = parsing.part.shape
    top = int(max(0, hip_y + 0.1 * (hip_y - shoulder_y)))
    bottom = int(min(height, hip_y + THIGH_BAND * max(hip_y - shoulder_y, 1.0)))
    gap = np.zeros((height, width), bool)
    legs = parsing.rendered & np.isin(parsing.part, LOWER)
    for row in range(top, bottom):
        cols = np.flatnonzero(legs[row])
        if len(cols) >= 2:
            gap[row, cols[0]:cols[-1] + 1] = ~parsing.rendered[row, cols[0]:cols[-1] + 1]
    return gap


def skirt_like(parsing: Parsing, below: np.ndarray, hip_y: float, shoulder_y: float) -> bool:
    """Whether `below` is a skirt or a coat's tails rather than trousers: it covers the gap between the legs, or
    (legs together or crossed: no gap to see) much of it stands past the fitted legs."""
    gap = between_legs(parsing, hip_y, shoulder_y)
    if gap.sum() >= MIN_BETWEEN_LEGS_PX:
        return bool((below & gap).sum() >= BETWEEN_LEGS_SHARE * gap.sum())
    return bool((below & ~parsing.rendered).sum() >= PAST_LEGS_SHARE * max(below.sum(), 1))


def main_colours(old_lab: np.ndarray) -> np.ndarray:
    """(<= 3, 3) Lab: the old garment's colour centres that hold at least MAIN_SHARE of its pixels (what of another
    garment the parsing let in, a skirt's top above the hip line, is not the old garment's colour)."""
    centres = colour_centres(old_lab)
    if not len(centres):
        return centres
    nearest_centre = np.linalg.norm(old_lab[:, None, :] - centres[None, :, :], axis=2).argmin(axis=1)
    share = np.bincount(nearest_centre, minlength=len(centres)) / len(old_lab)
    return centres[share >= MAIN_SHARE]


def plain_lower(old_lab: np.ndarray, new_lab: np.ndarray) -> tuple[str, np.ndarray]:
    """The first neutral lower garment's colour at least DISTINCT_DELTA from every old and new colour (Lab), else
    the one farthest from them."""
    others = np.concatenate([old_lab.reshape(-1, 3), new_lab.reshape(-1, 3)])
    rgb = np.asarray([c for _, c in PLAIN_LOWER], np.uint8).reshape(-1, 1, 3)
    distance = nearest(lab8(rgb).reshape(-1, 3), others)
    ok = np.flatnonzero(distance >= DISTINCT_DELTA)
    pick = int(ok[0]) if len(ok) else int(np.argmax(distance))
    return PLAIN_LOWER[pick][0], np.asarray(PLAIN_LOWER[pick][1], np.float32)


def one_piece_below(photo: np.ndarray, parsing: Parsing, old: np.ndarray, new: np.ndarray, hip_y: float | None,
                    shoulder_y: float | None) -> OnePiece | None:
    """The old garment's part below the hips when it is a one-piece (see the module docstring), else None.
    `old`: the parsed old garment above the hips; `new`: the new garment's pixels (their colours are avoided)."""
    if hip_y is None or shoulder_y is None or old.sum() < 200 or hip_y <= shoulder_y:
        return None
    lab = lab8(photo)
    rows = np.arange(old.shape[0])[:, None]
    chest = old & (rows < (shoulder_y + hip_y) / 2)  # a crop top's lower rows are the trousers' waistband
    centres = main_colours(lab[chest] if chest.sum() >= 200 else lab[old])
    zone = lower_zone(parsing, hip_y) & parsing.clothes
    if not len(centres) or not zone.any():
        return None
    alike = np.zeros(old.shape, bool)
    alike[zone] = nearest(lab[zone], centres) < ONE_PIECE_DELTA
    below = joined_to(alike, old)
    if not skirt_like(parsing, below, hip_y, shoulder_y):
        return None
    below &= ~new
    if below.mean() < MIN_ONE_PIECE_SHARE:
        return None
    name, colour = plain_lower(centres, colour_centres(lab[new]) if new.sum() >= 50 else np.zeros((0, 3)))
    return OnePiece(below=below, colour=colour, name=name)
