"""The person's own long skirt or dress, kept under a new top, as a skirt shell instead of trousers in its colours.

When the new garment is a top, the views take the legs' colours from photo.png, which keeps the person's lower
garment. Where that is a skirt (or a dress's skirt) reaching below the knees, painting it on two legs made trousers
of it. Whether it is one, and its hem (the last row where the person mask closes the gap between the fitted legs),
is `pipeline.fitting.worn`'s decision, the same one photo.png followed (a coat over trousers is not a skirt). Per
row, its outline is the run of the person mask round the middle between the legs, no farther out than the fitted
legs' own extent there and a margin (hands, a bag, a coat's sleeves). The shell is then built like a dress's
(`pipeline.fitting.skirt`), its rows the photo's (the world heights mapped to photo rows by a line through the
fitted hips, knees and ankles), and textured from photo.png inside that outline
(`pipeline.fitting.skirt_look.skirt_colours`): the front is the photo's skirt, the back its mirror.
"""

from __future__ import annotations

import numpy as np

from pipeline.fitting import skirt
from pipeline.fitting.dress import GarmentLook, PersonPhoto
from pipeline.fitting.worn import leg_centres
from pipeline.geometry import Camera

MARGIN = 0.25  # of the hips' keypoint span: how far past the fitted legs the kept skirt's outline may reach
SMOOTH = 0.06  # of the skirt's rows: the running mean its outline's edges take
ROW_BAND = 3.0  # pixels: the fitted legs' extent at a row is that of their vertices this near it


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
              part: np.ndarray, hem: int) -> tuple[skirt.SkirtPlan, skirt.Outline, GarmentLook] | None:
    """The kept skirt's plan down to the photo row `hem` (`pipeline.fitting.worn`'s decision), its outline in the
    photo and the photo as its 'garment', or None when the photo's outline does not make one."""
    mask = np.asarray(photo.mask, np.float32)
    if mask.shape != photo.rgb.shape[:2]:
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
