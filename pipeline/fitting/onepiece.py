"""photo.png under a new top when the old garment was a one-piece (a dress, a long coat): its part below the hips.

A top replaces the torso above the hips and the arms; the old garment's part over the hips and legs stays the
photo's. When that part is the same garment (a dress's skirt, a coat's tails) it would show under the new top as
a skirt or shorts in the old garment's colours. It is found as the clothes below the hips in the old garment's
main colours above the waist (the bottom of its parsed region can be another garment's top: a crop top's
trousers' waistband), joined to it, that cover the gap between the legs (a skirt or a coat's tails do, trousers
do not; with the legs together, that stand well past the fitted legs). It becomes a plain skirt: the first neutral
colour of `PLAIN_LOWER` clearly unlike both the old and the new garment, shaded by the photo's own light there
(its folds), the silhouette kept. A coat (`pipeline.fitting.worn` decides: a one-piece whose hem leaves trousers
showing) instead continues the trousers on the fitted legs; the rest of its tails is background. The record says
that this was assumed.
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
    name: str  # its colour's name, for the record ("trousers": a coat's lower garment, continued)
    coat: bool = False  # the one-piece is a coat over a lower garment: the legs continue that garment


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


def same_garment_below(photo: np.ndarray, parsing: Parsing, old: np.ndarray, hip_y: float | None,
                       shoulder_y: float | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(the old top's garment below the hips, its main colours in Lab) when it is one piece with the old top (see
    the module docstring), else None. `old`: the parsed old garment above the hips."""
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
    return below, centres


def replacement(photo: np.ndarray, below: np.ndarray, centres: np.ndarray, lower: np.ndarray | None,
                new: np.ndarray) -> OnePiece | None:
    """What the one-piece's part below the hips that the new top leaves becomes: a coat's lower garment `lower`
    (RGB, the trousers seen below its hem) continued, else a plain skirt unlike the old and the new garment
    (`new`: the new garment's pixels). None when too little of it is left."""
    below = below & ~new
    if below.mean() < MIN_ONE_PIECE_SHARE:
        return None
    if lower is not None:
        return OnePiece(below=below, colour=np.asarray(lower, np.float32), name="trousers", coat=True)
    new_lab = colour_centres(lab8(photo)[new]) if new.sum() >= 50 else np.zeros((0, 3))
    name, colour = plain_lower(centres, new_lab)
    return OnePiece(below=below, colour=colour, name=name)


def trousers_ease(parsing: Parsing, hem: int) -> int:
    """Pixels a side by which the trousers seen just below a coat's hem are wider than the fitted legs there (wide
    trousers on slim fitted legs), 0 when they are not seen."""
    height = parsing.part.shape[0]
    band = slice(hem + 1, min(height, hem + 1 + max(3, int(TROUSERS_BAND * height))))
    person = parsing.person[band] & ~np.isin(parsing.part[band], KEEP)
    legs = (parsing.rendered[band] & np.isin(parsing.part[band], LOWER)).sum(axis=1)
    if not (legs > 0).any():
        return 0
    wider = float(np.median((person.sum(axis=1) - legs)[legs > 0])) / 4  # two legs, two sides each
    return int(np.clip(wider, 0, MAX_EASE * height))


def coat_tails(parsing: Parsing, coat: np.ndarray, hip_y: float | None) -> np.ndarray:
    """(H, W) bool: the part of a coat below the new top that is not over the legs or hips (the fitted ones, as
    wide as the trousers below the hem: its flare, between and beside the legs): behind it is the background."""
    import cv2

    rows = np.arange(coat.shape[0])[:, None]
    hips = (parsing.part == PART["torso"]) & (rows > (hip_y if hip_y is not None else coat.shape[0]))
    on_body = parsing.rendered & (np.isin(parsing.part, LOWER) | hips)
    ease = trousers_ease(parsing, int(np.nonzero(coat)[0].max())) if coat.any() else 0
    if ease:
        on_body = cv2.dilate(on_body.astype(np.uint8), np.ones((1, 2 * ease + 1), np.uint8)) > 0
    return coat & ~on_body


TROUSERS_BAND = 0.03  # the trousers' width is read this share of the height below a coat's hem ...
MAX_EASE = 0.05  # ... and widens each fitted leg by at most this share of it a side
BACKGROUND_CLEAR = 0.01  # the background continued across a hole is taken this share of the height off the person


def background_across(photo: np.ndarray, person: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32: per row, the photo's background just left and right of the person (blurred, clear of the
    mask's loose edge), interpolated across by distance; the photo where a row has no background on a side."""
    import cv2

    clear = max(1, int(BACKGROUND_CLEAR * photo.shape[0]))
    grown = cv2.dilate(person.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * clear + 1,) * 2))
    known = (grown == 0) & ~hole
    smooth = cv2.GaussianBlur(photo.astype(np.float32), (0, 0), max(1.0, clear / 2))
    out = photo.astype(np.float32)
    cols = np.arange(photo.shape[1])
    for row in np.flatnonzero(hole.any(axis=1)):
        have = np.flatnonzero(known[row])
        if not len(have):
            continue
        left = np.maximum.accumulate(np.where(known[row], cols, -1))
        right = np.minimum.accumulate(np.where(known[row], cols, photo.shape[1])[::-1])[::-1]
        left_ok, right_ok = left >= 0, right < photo.shape[1]
        li, ri = np.where(left_ok, left, have[0]), np.where(right_ok, right, have[-1])
        wl = np.where(left_ok & right_ok, (ri - cols) / np.maximum(ri - li, 1), left_ok.astype(np.float64))
        line = wl[:, None] * smooth[row, li] + (1 - wl[:, None]) * smooth[row, ri]
        out[row, hole[row]] = line[hole[row]]
    return out
