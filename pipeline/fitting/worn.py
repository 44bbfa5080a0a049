"""What the person wears below the old top, decided once for photo.png and for the views: separates, their own
skirt, a one-piece (a dress) or a coat over a lower garment.

Two pieces of evidence, each read once:
1. **The gap between the legs** (`gap_hem`): between the fitted legs (the middle third of the span between the two
   legs' centre lines, hip to knee to ankle, as the fitted keypoints place them) the person mask stays closed from
   the crotch to below the knees: something long (a skirt, a dress, a coat) hangs there. Its hem is the last such
   row. Trousers whose legs touch from the thighs to the calves would pass for a skirt; the closed run must reach a
   KNEE_MARGIN share of the knee-to-ankle length below the knees to count.
2. **The old top's own garment below the hips** (`onepiece.same_garment_below`): clothes in the old top's main
   colours, joined to it, that cover the gap between the thighs.
A one-piece whose hem leaves the fitted legs in clothes, not skin (trousers, leggings; unlike the one-piece's colours
when no closed gap gives the hem), is a coat: an upper outer layer over a lower garment. Under a new top photo.png
makes a dress's skirt a plain skirt and continues a coat's lower garment on the legs; the views keep a shell for a
long skirt or dress, never for a coat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipeline.fitting.onepiece import lower_zone, same_garment_below
from pipeline.fitting.parsing import LOWER, Parsing, lab8, nearest

CLOSED = 0.9  # share of the middle of the gap between the legs the person mask covers in a closed row
KNEE_MARGIN = 0.15  # of the knee-to-ankle length: the closed run must reach this far below the knees
GAP_ROWS = 0.02  # of the hip-to-ankle rows: open rows tolerated inside the closed run (a fold, a shadow)
LEGS = ((11, 13, 15), (12, 14, 16))  # COCO hip, knee, ankle of each leg
LOWER_SHARE = 0.5  # this share of the fitted legs seen below a one-piece's hem in clothes: a coat's trousers ...
MIN_LOWER_SHARE = 0.002  # ... of legs at least this share of the photo (a few pixels of boot are not trousers) ...
LOWER_BAND = 0.06  # ... looked at this share of the photo's height below the hem (not the boots) ...
UNLIKE_DELTA = 20.0  # ... unlike the one-piece's colours by this Lab distance when no closed gap gives the hem

Kind = Literal["separates", "skirt", "one_piece", "coat"]


@dataclass(frozen=True)
class Worn:
    """The decision, with what each consumer needs of it."""

    kind: Kind
    hem_row: int | None = None  # the last photo row where the person closes the gap between the legs below the knees
    below: np.ndarray | None = None  # (H, W) bool: the old top's garment below the hips (a one-piece's, a coat's)
    centres: np.ndarray | None = None  # (<= 3, 3) Lab: that garment's main colours
    lower: np.ndarray | None = None  # (3,) float32 RGB: a coat's: the lower garment seen below its hem

    @property
    def long_skirt(self) -> bool:
        """Whether the views wear a skirt shell kept from photo.png (the person's own skirt, or a dress's skirt)."""
        return self.hem_row is not None and self.kind in ("skirt", "one_piece")

    def record(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "hem_row": self.hem_row}
        if self.lower is not None:
            out["lower_rgb"] = [round(float(c)) for c in self.lower]
        return out


def leg_centres(keypoints_2d: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) x of each leg's centre line at image rows, from its hip, knee and ankle keypoints."""
    kp = np.asarray(keypoints_2d, np.float64)
    out = []
    for leg in LEGS:
        y, x = kp[list(leg), 1], kp[list(leg), 0]
        order = np.argsort(y)
        out.append(np.interp(rows, y[order], x[order]))
    return out[0], out[1]


def closed_rows(mask: np.ndarray, keypoints_2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows from the hips to the ankles and whether the person mask closes the gap between the legs there."""
    kp = np.asarray(keypoints_2d, np.float64)
    hip, ankle = kp[[11, 12], 1].mean(), kp[[15, 16], 1].mean()
    height, width = mask.shape
    rows = np.arange(max(0, int(hip)), min(height, int(ankle)))
    left, right = leg_centres(kp, rows)
    mid, third = (left + right) / 2, np.abs(right - left) / 6
    closed = np.zeros(len(rows), dtype=bool)
    for i, row in enumerate(rows):
        a, b = int(np.clip(mid[i] - third[i], 0, width - 1)), int(np.clip(mid[i] + third[i], 0, width - 1)) + 1
        closed[i] = mask[row, a:b].mean() > CLOSED if b > a else False
    return rows, closed


def hem_row(rows: np.ndarray, closed: np.ndarray, keypoints_2d: np.ndarray) -> int | None:
    """The last row of the closed run from the crotch down, if it reaches below the knees (else None)."""
    if not len(rows):
        return None
    kp = np.asarray(keypoints_2d, np.float64)
    knee, ankle = kp[[13, 14], 1].mean(), kp[[15, 16], 1].mean()
    start = int(np.searchsorted(rows, rows[0] + 0.25 * (knee - rows[0])))  # the crotch: the legs part below it
    slack, misses, last = max(2, int(GAP_ROWS * len(rows))), 0, None
    for i in range(start, len(rows)):
        misses = 0 if closed[i] else misses + 1
        if misses > slack:
            break
        if closed[i]:
            last = int(rows[i])
    if last is None or last < knee + KNEE_MARGIN * (ankle - knee):
        return None
    return last


def gap_hem(mask: np.ndarray, keypoints_2d: np.ndarray) -> int | None:
    """The hem row of what closes the gap between the legs below the knees in the person mask (bool (H, W)), or
    None when the legs part above it (trousers, a short skirt)."""
    rows, closed = closed_rows(mask, keypoints_2d)
    return hem_row(rows, closed, keypoints_2d)


def lower_below(photo: np.ndarray, parsing: Parsing, below: np.ndarray, centres: np.ndarray, hem: int | None
                ) -> tuple[np.ndarray, int] | None:
    """(RGB of the lower garment a one-piece's hem leaves showing on the fitted legs: a coat's trousers, the hem's
    row), or None when the legs below it are bare (skin) or not seen. The hem is where the gap between the legs
    opens (`hem`); without one (a short coat) it is the one-piece's own lowest rows, and the legs below must then
    be in clothes unlike it (a dress of the tights' colour is not a coat)."""
    if not below.any():
        return None
    unlike_needed = hem is None
    hem = int(np.percentile(np.nonzero(below)[0], 98)) if hem is None else hem
    under = np.arange(below.shape[0])[:, None] > hem
    legs = parsing.rendered & parsing.person & np.isin(parsing.part, LOWER) & under
    if unlike_needed:
        legs &= ~below
    if legs.sum() < MIN_LOWER_SHARE * below.size:
        return None
    rows = np.arange(below.shape[0])[:, None]
    near_hem = legs & (rows <= hem + LOWER_BAND * below.shape[0])  # the trousers just below the hem, not the boots
    legs = near_hem if near_hem.sum() >= MIN_LOWER_SHARE * below.size else legs
    other = legs & parsing.clothes
    if unlike_needed:
        unlike = np.zeros(below.shape, bool)
        unlike[other] = nearest(lab8(photo)[other], centres) >= UNLIKE_DELTA
        other &= unlike
    if other.sum() < LOWER_SHARE * legs.sum():
        return None
    return np.asarray(np.median(photo[other], axis=0), np.float32), hem


def coat_region(parsing: Parsing, below: np.ndarray, hip_y: float, hem: int) -> np.ndarray:
    """(H, W) bool: a coat's part below the hips down to its hem: the person over the hips and legs there whole
    (its folds and shadows too, unlike its main colours), never the hands, feet or the trousers below the hem."""
    rows = np.arange(below.shape[0])[:, None]
    return (lower_zone(parsing, hip_y) | below) & (rows <= hem) & (rows > min(hip_y, float(np.nonzero(below)[0].min())))


def decide(photo: np.ndarray, parsing: Parsing, old: np.ndarray, keypoints_2d: np.ndarray | None,
           hip_y: float | None, shoulder_y: float | None) -> Worn:
    """What the person wears below the old top (see the module docstring). `old`: the parsed old top above the
    hips; `keypoints_2d`: the fitted COCO keypoints in the photo (None: the gap's hem is not looked for)."""
    hem = gap_hem(parsing.person, keypoints_2d) if keypoints_2d is not None else None
    found = same_garment_below(photo, parsing, old, hip_y, shoulder_y)
    if found is None:
        return Worn("skirt" if hem is not None else "separates", hem)
    below, centres = found
    coat = lower_below(photo, parsing, below, centres, hem)
    if coat is None or hip_y is None:
        return Worn("one_piece", hem, below, centres)
    lower, coat_hem = coat
    return Worn("coat", hem, coat_region(parsing, below, hip_y, coat_hem), centres, lower)
