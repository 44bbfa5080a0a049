"""The person's own long skirt or dress, kept under a new top, as a skirt shell instead of trousers in its colours.

When the new garment is a top, the views take the legs' colours from photo.png, which keeps the person's lower
garment. Where that is a skirt (or a dress's skirt) reaching below the knees, painting it on two legs made trousers
of it. The photo says so: between the fitted legs (the middle third of the span between the two legs' centre
lines, hip to knee to ankle, as the fitted keypoints place them) the person mask stays closed from the crotch to
below the knees. Its hem is the last such row; per row, its outline is the run of the person mask round that
middle, no farther out than the fitted legs' own extent there and a margin (hands, a bag, a coat's sleeves). The
shell is then built like a dress's (`pipeline.fitting.skirt`), its rows the photo's (the world heights
mapped to photo rows by a line through the fitted hips, knees and ankles), and textured from photo.png inside that
outline (`pipeline.fitting.skirt_look.skirt_colours`): the front is the photo's skirt, the back its mirror.
Trousers whose legs touch from the thighs to the calves would pass for a skirt; the closed run must reach a
KNEE_MARGIN share of the knee-to-ankle length below the knees to count.
"""

from __future__ import annotations

import numpy as np

from pipeline.fitting import skirt
from pipeline.fitting.dress import GarmentLook, PersonPhoto
from pipeline.geometry import Camera

CLOSED = 0.9  # share of the middle of the gap between the legs the person mask covers in a closed row
KNEE_MARGIN = 0.15  # of the knee-to-ankle length: the closed run must reach this far below the knees
GAP_ROWS = 0.02  # of the hip-to-ankle rows: open rows tolerated inside the closed run (a fold, a shadow)
MARGIN = 0.25  # of the hips' keypoint span: how far past the fitted legs the kept skirt's outline may reach
SMOOTH = 0.06  # of the skirt's rows: the running mean its outline's edges take
ROW_BAND = 3.0  # pixels: the fitted legs' extent at a row is that of their vertices this near it
LEGS = ((11, 13, 15), (12, 14, 16))  # COCO hip, knee, ankle of each leg


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


def body_extent(vertices: np.ndarray, part: np.ndarray, camera: Camera, rows: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """(N,) leftmost and rightmost column of the fitted hips and legs at each image row (NaN where none)."""
    keep = np.isin(part, skirt.SKIRT_PARTS)
    xy = camera.project(np.asarray(vertices, np.float64)[keep])
    low, high = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    order = np.argsort(xy[:, 1])
    ys = xy[order, 1]
    for i, row in enumerate(rows):
        a, b = np.searchsorted(ys, row - ROW_BAND), np.searchsorted(ys, row + ROW_BAND)
        if b > a:
            low[i], high[i] = xy[order[a:b], 0].min(), xy[order[a:b], 0].max()
    return low, high


def photo_outline(mask: np.ndarray, keypoints_2d: np.ndarray, top: int, bottom: int,
                  extent: tuple[np.ndarray, np.ndarray]) -> skirt.Outline:
    """Per row from `top` to `bottom`: the run of the person mask round the middle between the legs, no farther
    out than the fitted legs' `extent` (per row) and a MARGIN share of the hips' span (hands, a bag or a coat's
    sleeves beside the hips are not the skirt)."""
    height, width = mask.shape
    left, right = np.full(height, np.nan), np.full(height, np.nan)
    rows = np.arange(top, bottom + 1)
    a, b = leg_centres(keypoints_2d, rows)
    kp = np.asarray(keypoints_2d, np.float64)
    margin = MARGIN * abs(kp[11, 0] - kp[12, 0])
    low = np.nan_to_num(extent[0], nan=-np.inf) - margin
    high = np.nan_to_num(extent[1], nan=np.inf) + margin
    for i, (row, mid) in enumerate(zip(rows, (a + b) / 2, strict=True)):
        line = mask[row] > 0.5
        centre = int(np.clip(mid, 0, width - 1))
        if not line[centre]:
            continue
        off = np.flatnonzero(~line)
        left[row] = max((off[off < centre].max() + 1) if (off < centre).any() else 0, low[i])
        right[row] = min((off[off > centre].min() - 1) if (off > centre).any() else width - 1, high[i])
    span = max(3, int(SMOOTH * (bottom - top)))  # the mask's ragged edge and the legs' steps, evened out
    return skirt.Outline(_smoothed(left, span), _smoothed(right, span), top, bottom)


def _smoothed(values: np.ndarray, span: int) -> np.ndarray:
    """A running mean over `span` rows of the finite values (NaN rows stay NaN)."""
    ok = np.isfinite(values)
    kernel = np.ones(span)
    total = np.convolve(np.where(ok, values, 0.0), kernel, mode="same")
    count = np.convolve(ok.astype(np.float64), kernel, mode="same")
    return np.where(ok, total / np.maximum(count, 1.0), np.nan)


def row_line(keypoints_2d: np.ndarray, keypoints_3d: np.ndarray) -> tuple[float, float]:
    """(row at z = 0, rows per metre): the least-squares line from world height to photo row through the fitted
    hips, knees and ankles."""
    index = [11, 12, 13, 14, 15, 16]
    z, y = np.asarray(keypoints_3d, np.float64)[index, 2], np.asarray(keypoints_2d, np.float64)[index, 1]
    slope, intercept = np.polyfit(z, y, 1)
    return float(intercept), float(slope)


def kept_plan(photo: PersonPhoto, keypoints_2d: np.ndarray, keypoints_3d: np.ndarray, vertices: np.ndarray,
              part: np.ndarray) -> tuple[skirt.SkirtPlan, skirt.Outline, GarmentLook] | None:
    """The kept skirt's plan, its outline in the photo and the photo as its 'garment', or None when the photo
    shows no skirt below the knees."""
    mask = np.asarray(photo.mask, np.float32)
    if mask.shape != photo.rgb.shape[:2]:
        return None
    rows, closed = closed_rows(mask > 0.5, keypoints_2d)
    hem = hem_row(rows, closed, keypoints_2d)
    if hem is None:
        return None
    intercept, slope = row_line(keypoints_2d, keypoints_3d)
    if slope >= 0:  # rows must grow downwards as heights fall
        return None
    hip_z = skirt.posed_levels(keypoints_3d)["hip"]
    top = int(max(0, round(intercept + slope * hip_z)))
    rows = np.arange(top, hem + 1)
    outline = photo_outline(mask, keypoints_2d, top, hem, body_extent(vertices, part, photo.camera, rows))
    if np.isfinite(outline.left).sum() < 8:
        return None
    plan = skirt.SkirtPlan(hip_z, (hem - intercept) / slope, hip_z, intercept + slope * hip_z, -1.0 / slope)
    cutout = np.zeros((*mask.shape, 4), np.uint8)
    cutout[..., :3] = photo.rgb[..., :3]
    cols = np.arange(mask.shape[1])
    inside = (cols[None, :] >= np.nan_to_num(outline.left, nan=np.inf)[:, None]) & (
        cols[None, :] <= np.nan_to_num(outline.right, nan=-np.inf)[:, None])
    cutout[..., 3] = np.where(inside & (mask > 0.5), 255, 0)
    return plan, outline, GarmentLook(cutout, "lower")
