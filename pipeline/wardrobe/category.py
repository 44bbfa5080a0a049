"""Garment category (upper / lower / full body) from the mask's shape, with a confidence.

Product photos show one garment, upright and filling the frame, so its silhouette says a lot:
- trousers and shorts split into two legs at the bottom: two runs of garment per row, of similar width,
  either side of the middle, from the crotch down;
- a skirt has a straight waistband on top, no shoulders or sleeves, and widens downwards;
- a dress is a long single piece: its height is well above three times its width at mid-height (the body,
  whatever the sleeves do to the box);
- everything else is a top.
The rules are few and read from one `ShapeFeatures`, so a surprising answer can be traced to a number.

Some uploads are no garment worn on the body at all; `accessory_shape` says when the outline looks like one:
- a shoe seen from the side is wide and low, lopsided (heel and toe differ), narrow on top and widest at the sole;
- a bag is a solid, symmetric block under a thin handle, narrower than the block, centred on it.
Those are flagged, not refused: the shape is evidence, the user may know better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.spec import Category


@dataclass(frozen=True)
class ShapeFeatures:
    aspect: float  # bounding box height / width
    leg_split: float  # fraction of the garment's height, from the hem up, split into two legs
    top_fill: float  # columns covered by the topmost 3% of rows / width at 10% (a waistband: near 1)
    widths: tuple[float, float, float, float]  # extent at 5, 25, 50 and 90% of the height / box width
    symmetry: float = 1.0  # IoU of the garment with its mirror image (left-right): garments are near 1
    thirds: tuple[float, float, float] = (1.0, 1.0, 1.0)  # share of the box covered in its top, middle, bottom third

    @property
    def body_aspect(self) -> float:
        """Height over the width at mid-height: sleeves widen a top's box, not its body; a dress is long."""
        return self.aspect / max(self.widths[2], 1e-3)

    @property
    def flares_evenly(self) -> float:
        """0..1: the outline widens steadily from top to hem (a skirt), no shoulder step, no sleeves."""
        w5, w25, w50, w90 = self.widths
        if not (w5 <= w25 * 1.03 and w25 <= w50 * 1.03 and w50 <= w90 * 1.03):
            return 0.0
        total = w90 - w5
        if total <= 0.1 * w5:
            return 0.0
        return 1.0 - _ramp((w25 - w5) / total, 0.4, 0.6)


@dataclass(frozen=True)
class CategoryGuess:
    category: Category
    confidence: float  # 0..1
    features: ShapeFeatures


def _runs(row: np.ndarray) -> np.ndarray:
    """(n, 2) start / end (exclusive) of the True runs in a boolean row."""
    padded = np.concatenate([[False], row, [False]]).astype(np.int8)
    change = np.flatnonzero(np.diff(padded))
    return change.reshape(-1, 2)


def _is_leg_pair(row: np.ndarray, width: int) -> bool:
    """Two substantial runs of similar width with a gap near the middle: a pair of legs."""
    runs = _runs(row)
    runs = runs[(runs[:, 1] - runs[:, 0]) >= 0.06 * width]
    if len(runs) != 2:
        return False
    widths = runs[:, 1] - runs[:, 0]
    gap_mid = (runs[0, 1] + runs[1, 0]) / 2.0
    return bool(widths.min() >= 0.45 * widths.max() and abs(gap_mid - width / 2.0) <= 0.15 * width
                and runs[1, 0] - runs[0, 1] >= 0.02 * width)


def _leg_split(box: np.ndarray) -> float:
    """Fraction of the height, counted up from the hem, whose rows are leg pairs (gaps of 2% allowed)."""
    h, w = box.shape
    pairs = np.array([_is_leg_pair(box[y], w) for y in range(h - 1, -1, -1)])
    start = int(0.03 * h)  # the hem rows can be ragged
    misses, run = 0, 0
    for ok in pairs[start:]:
        misses = 0 if ok else misses + 1
        if misses > max(2, 0.02 * h):
            break
        run += 1
    return max(0.0, run - misses) / h


def _width_at(box: np.ndarray, fraction: float) -> float:
    """Extent (first to last garment pixel) of the row at `fraction` of the height, over a 3-row band."""
    h = box.shape[0]
    y = min(h - 1, int(fraction * h))
    band = box[max(0, y - 1):y + 2].any(axis=0)
    cols = np.flatnonzero(band)
    return float(cols[-1] - cols[0] + 1) if cols.size else 0.0


def shape_features(mask: np.ndarray) -> ShapeFeatures:
    """The features of the garment (mask > 0.5) inside its bounding box."""
    solid = mask > 0.5
    rows, cols = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
    if rows.size == 0:
        raise ValueError("the mask is empty")
    box = solid[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = box.shape
    top = box[: max(1, int(0.03 * h))].any(axis=0).sum()
    mirrored = box[:, ::-1]
    return ShapeFeatures(
        aspect=h / w,
        leg_split=_leg_split(box),
        top_fill=float(top) / max(1.0, _width_at(box, 0.1)),
        widths=tuple(round(_width_at(box, f) / w, 3) for f in (0.05, 0.25, 0.5, 0.9)),  # type: ignore[arg-type]
        symmetry=round(float((box & mirrored).sum()) / max(1.0, float((box | mirrored).sum())), 3),
        thirds=tuple(round(float(part.mean()), 3) for part in np.array_split(box, 3, axis=0)),  # type: ignore[arg-type]
    )


def _ramp(value: float, low: float, high: float) -> float:
    """0 below `low`, 1 above `high`, linear between: how strongly a feature says yes."""
    return float(np.clip((value - low) / (high - low), 0.0, 1.0))


def scores(f: ShapeFeatures) -> dict[Category, float]:
    """Evidence for each category in 0..1 (not probabilities; the best one wins)."""
    trousers = _ramp(f.leg_split, 0.15, 0.35)
    skirt = _ramp(f.top_fill, 0.75, 0.9) * f.flares_evenly * _ramp(f.aspect, 0.6, 0.8)
    lower = max(trousers, 0.8 * skirt)
    full = _ramp(f.body_aspect, 2.5, 2.9) * (1.0 - trousers)
    upper = (1.0 - _ramp(f.body_aspect, 2.4, 3.0)) * (1.0 - trousers) * (1.0 - 0.8 * skirt)
    return {"upper": upper, "lower": lower, "full": full}


def accessory_shape(f: ShapeFeatures) -> str | None:
    """'a shoe' or 'a bag' when the outline looks like one rather than like clothing; None otherwise."""
    w5, _, w50, w90 = f.widths
    top, _, bottom = f.thirds
    if f.aspect < 0.65 and f.symmetry < 0.8 and w5 < 0.35 and w90 > 0.9:
        return "a shoe"
    if top < 0.3 and bottom > 0.85 and w5 < 0.5 and abs(w50 - w90) < 0.12 and f.symmetry > 0.9 and f.leg_split < 0.1:
        return "a bag"
    return None


def infer_category(mask: np.ndarray) -> CategoryGuess:
    """The best category; its confidence is its evidence less half the runner-up's."""
    f = shape_features(mask)
    ranked = sorted(scores(f).items(), key=lambda kv: kv[1], reverse=True)
    (best, top), (_, second) = ranked[0], ranked[1]
    return CategoryGuess(best, round(float(np.clip(top - 0.5 * second, 0.0, 1.0)), 3), f)
