"""How far a top's sleeves reach, read off the garment photo's mask, so the body's arms are covered as far.

A front product photo shows the torso as a central column and the sleeves beside it. The column is the run
of garment pixels through the middle of the hem (the bottom rows, where a top is only its body); every garment
pixel clear of the column (by a small margin) is sleeve, unless its piece hugs the column on (nearly) every
row down into the bottom 15 %: that is the body itself, wider than its hem (a peplum, a skirt, a curved shirt
tail); a hanging long sleeve parts from the body somewhere on its way down. The reach is the farthest sleeve
pixel's distance from the top corner of the column on its side, in units of the garment's height: ~0
sleeveless (straps stay inside the column), ~0.2-0.5 a short sleeve, ~0.8-1.2 a long sleeve at the side.
Phase 3 turns it into metres
with the height of the body region the garment covers (`regions.region_height_m`).

Known limits (on the 42 dev garments: 2 short-sleeved tops whose body is wider than the hem read as
sleeveless, 1 cold-shoulder top reads as long-sleeved): a long sleeve lying against the body all the way down
reads as body. The fitting manifest records the reach and its basis so this can be seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HEM_BAND = 0.06  # share of the garment's height, at the bottom, that defines the torso column
MARGIN = 0.04  # share of the column's width a sleeve pixel must lie beyond the column
MIN_SLEEVE_SHARE = 0.01  # of the garment's pixels: fewer sleeve pixels than this = sleeveless
MIN_PIECE_SHARE = 0.003  # of the garment's pixels: smaller pieces beside the column are noise
FLARE_TOUCH = 0.95  # a piece touching the column on this share of its rows, down into the bottom 15 %, is body
SLEEVELESS_REACH = 0.08  # a reach below this (garment heights) is a strap or a shoulder seam, not a sleeve
SLIT_GAP = 0.15  # of a hem row's extent: a gap at the centre this narrow is a slit, the column runs across it


@dataclass(frozen=True)
class SleeveReach:
    reach: float  # garment heights from the shoulder corner to the farthest sleeve pixel; 0 = sleeveless
    basis: str  # how it was read, for the manifest

    def metres(self, region_height_m: float) -> float:
        return self.reach * region_height_m


def _central_run(row: np.ndarray, centre: int) -> tuple[int, int] | None:
    """(start, end) of the run of True containing `centre`; where `centre` falls in a gap narrower than SLIT_GAP
    of the row's extent (a dress's slit), the two runs either side of it as one; else the run nearest to it."""
    cols = np.flatnonzero(row)
    if len(cols) == 0:
        return None
    breaks = np.flatnonzero(np.diff(cols) > 1)
    starts = np.concatenate([[cols[0]], cols[breaks + 1]])
    ends = np.concatenate([cols[breaks], [cols[-1]]])
    before, after = np.flatnonzero(ends < centre), np.flatnonzero(starts > centre)
    if len(before) and len(after) and starts[after[0]] - ends[before[-1]] <= SLIT_GAP * (cols[-1] - cols[0] + 1):
        return int(starts[before[-1]]), int(ends[after[0]])
    inside = np.flatnonzero((starts <= centre) & (ends >= centre))
    pick = inside[0] if len(inside) else int(np.argmin(np.minimum(abs(starts - centre), abs(ends - centre))))
    return int(starts[pick]), int(ends[pick])


def sleeve_reach(alpha: np.ndarray) -> SleeveReach | None:
    """The sleeves' reach in a garment photo's (H, W) alpha (uint8 0..255 or float 0..1); None when empty."""
    mask = np.asarray(alpha) > (127 if np.asarray(alpha).dtype == np.uint8 else 0.5)
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) < 8:
        return None
    top, bottom = int(rows[0]), int(rows[-1])
    height = bottom - top + 1
    centre = int(round(np.flatnonzero(mask.any(axis=0)).mean()))
    band = [_central_run(mask[r], centre) for r in range(bottom - max(1, int(HEM_BAND * height)), bottom + 1)]
    runs = [r for r in band if r is not None]
    left, right = int(np.median([r[0] for r in runs])), int(np.median([r[1] for r in runs]))
    margin = max(1, int(MARGIN * (right - left + 1)))
    ys, xs = np.nonzero(mask)
    sleeve = _sleeve_pixels(mask, left - margin, right + margin, top + 0.85 * height)
    outside_left, outside_right = sleeve & (xs < left), sleeve & (xs > right)
    if sleeve.sum() < MIN_SLEEVE_SHARE * len(xs):
        return SleeveReach(0.0, "no garment beside the hem's column (or only the body flaring): sleeveless")
    reach = 0.0
    for side, corner_x in ((outside_left, left), (outside_right, right)):
        if not side.any():
            continue
        column_rows = ys[(xs >= left) & (xs <= right) & (np.abs(xs - corner_x) <= margin)]
        corner_y = int(column_rows.min()) if len(column_rows) else top
        reach = max(reach, float(np.hypot(xs[side] - corner_x, ys[side] - corner_y).max()) / height)
    if reach < SLEEVELESS_REACH:
        return SleeveReach(0.0, f"garment beside the column reaches only {reach:.2f} of its height: sleeveless")
    return SleeveReach(round(reach, 3), "farthest garment pixel beside the hem's column, from the shoulder corner")


def _sleeve_pixels(mask: np.ndarray, left: int, right: int, low_row: float) -> np.ndarray:
    """(N,) bool over `np.nonzero(mask)`: garment pixels beside the column [left, right] that belong to a sleeve."""
    import cv2

    outside = mask.copy()
    outside[:, max(left, 0):right + 1] = False
    count, labels = cv2.connectedComponents(outside.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, dtype=bool)
    total = mask.sum()
    for piece in range(1, count):
        ys, xs = np.nonzero(labels == piece)
        if len(ys) < MIN_PIECE_SHARE * total:
            continue
        edge = left - 1 if xs.mean() < left else right + 1
        touching = np.unique(ys[np.abs(xs - edge) <= 1])
        spanned = ys.max() - ys.min() + 1
        flare = len(touching) >= FLARE_TOUCH * spanned and ys.max() >= low_row
        keep[piece] = not flare
    rows, cols = np.nonzero(mask)
    return keep[labels[rows, cols]]
