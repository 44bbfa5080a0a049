"""What the photo does not show, made to look like what it does: texture and shading for the made-up texels.

The dressing makes up colours where the photo says nothing (the nearest known colour, skin over the old
sleeves, hair and skin on the back of the head, photo.png's own refills). Left as they are these are one flat
colour over a large area, while the texels the photo shows carry its grain and its light. Three terms, applied to
the made-up texels only (weighted by how made-up each is, so the photo's own shading is never doubled):

1. Grain (`transfer_grain`): the photo texels' colour detail (each channel's departure from its local mean, a
   Gaussian of `GRAIN_SIGMA` texels, so folds and sheen come with the fine grain; `FINE_SIGMA` on the head,
   where a wide band carried the eyes and ears round the skull), over the local luminance, is carried into the
   made-up texels by reflection through the nearest photo texel of the same body part: a made-up texel at
   distance d from the photo takes the detail at distance d on the other side, folded every `FOLD_TEXELS` so
   that deep texels still land near the edge, where the photo's detail is. A reflection that lands off the
   photo's texels (a fifth of them did on four hard photos, and stayed flat) retries shallower, then in a
   window beside the nearest photo texel. The detail comes only from texels the photo sees squarely
   (`GRAIN_FACING`): its grazing edge, next to what it does not show, is one photo pixel stretched over many
   texels. It modulates each channel of the made-up colour, so the colour keeps its mean and its hue varies as
   the photo's does.
2. Shade (`shading`): the photo's light as its own texels show it: per texel the luminance relative to its
   part's median, fitted against how much the surface turns from the photo's camera (sideways, 0 facing it, 1
   edge-on) and how much it faces up. The fitted slopes (bounded) darken the made-up texels' sides and brighten
   their tops like the photo's texels, normalised to leave their mean unchanged. Not on the head: shading the
   made-up sides of the face moved the identity distance at 315 from 0.494 to 0.529 (dev pair 0).
3. Strands (`strands`): made-up hair (the back of the head, long hair's shell on the back) is one colour from the
   photo; it takes a procedural strand pattern instead: light and dark streaks running down, `STRAND_MM` apart
   round the head's axis, waving slowly along their length (fixed seed: the same job gives the same hair), 7 % of
   the colour plus up to 9 levels on dark hair.

Plain numpy and cv2 (imported inside).
"""

from __future__ import annotations

import numpy as np

GRAIN_SIGMA = 12.0  # texels: the local mean the photo's detail is taken against (its folds, sheen and grain)
FINE_SIGMA = 4.0  # texels: the same on the head, where only the skin's and the hair's fine grain is carried
GRAIN_CLIP = 0.25  # the detail, relative to the local luminance, is clipped to +/- this (seams, part edges)
GRAIN_FACING = 0.5  # the detail is taken from photo texels facing its camera at least this much (cosine)
FOLD_TEXELS = 24  # a made-up texel deeper than this from the photo takes detail from within this band
RETRY_DEPTHS = (1.0, 0.5, 0.25)  # a reflection that lands off the photo's texels tries again this much shallower
WINDOW_TEXELS = 16  # ... and last a window this wide beside its nearest photo texel, tiled by its position
SIDE_SLOPE = (-0.45, 0.0)  # bounds of the fitted luminance change from facing the camera to edge-on
UP_SLOPE = (0.0, 0.25)  # bounds of the fitted luminance change per unit of the normal's upward component
MIN_FIT = 200  # photo texels needed to fit the shading; fewer: no shading term
FIT_STRIDE = 8  # the shading is fitted on every 8th photo texel (hundreds of thousands: plenty, and 8x quicker)
STRAND_MM = (5.0, 18.0)  # the strands' spacing range, millimetres across
STRAND_WAVES = 24  # sinusoids summed into the strand pattern
STRAND_GAIN = (0.07, 9.0)  # the pattern's amplitude: relative to the hair's colour, plus levels fading out from
# black to mid-grey hair (a relative gain alone leaves black hair flat; a large one striped brown hair like a zebra)
HAIR_NEAR = 14.0  # Lab distance from the hair colour under which a made-up texel counts as hair
STRAND_SEED = 7
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def transfer_grain(atlas: np.ndarray, source: np.ndarray, part: np.ndarray, target: np.ndarray,
                   fine: np.ndarray | None = None) -> np.ndarray:
    """(S, S, 3) float32 relative colour detail: the photo texels' own (`source`: each channel's departure from its
    local mean, a Gaussian of `GRAIN_SIGMA` texels, over the local mean luminance), reflected into the `target`
    texels from the nearest source texel of the same part (`reflect_from`); `fine` target texels take the
    detail against `FINE_SIGMA` instead (the head: a wide band would carry the eyes and ears round the skull).
    0 where no source texel is found, and off the targets and sources."""
    wide = relative_detail(atlas, source, GRAIN_SIGMA)
    if source.all() or not source.any():
        return wide
    narrow = relative_detail(atlas, source, FINE_SIGMA) if fine is not None and fine.any() else wide
    py, px, dy, dx = reflect_from(source, part, target)
    detail = np.where(source[..., None], wide, 0.0).astype(np.float32)
    take_fine = fine[py, px] if fine is not None else np.zeros(len(py), dtype=bool)
    detail[py, px] = np.where(take_fine[:, None], narrow[dy, dx], wide[dy, dx])
    return detail


def relative_detail(atlas: np.ndarray, source: np.ndarray, sigma: float) -> np.ndarray:
    """(S, S, 3) float32: each source texel's colour minus the source's local mean (a Gaussian of `sigma` texels,
    over source texels only), over the local mean luminance (at least 8), soft-clipped to +/- `GRAIN_CLIP`; 0 off it."""
    rgb = atlas.astype(np.float32)
    weight = source.astype(np.float32)
    stacked = np.concatenate([rgb * weight[..., None], weight[..., None]], axis=2)
    blurred = smooth(stacked, sigma)
    mean = blurred[..., :3] / np.maximum(blurred[..., 3:], 1e-3)
    scale = np.maximum(mean @ LUMA, 8.0)[..., None]
    soft = GRAIN_CLIP * np.tanh((rgb - mean) / scale / GRAIN_CLIP)  # a soft clip: no plateaus with hard edges
    return np.where(source[..., None], soft, 0.0).astype(np.float32)


def smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W, C) float32 Gaussian blur; a wide one (sigma over 6) at a quarter of the size and scaled back up
    (a local mean: it differs from the full blur by under 1 % of the range even on white noise, at a fraction of
    the cost on a 1024 atlas)."""
    import cv2

    if sigma <= 6.0:
        return cv2.GaussianBlur(image, (0, 0), sigma).reshape(image.shape)
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(1, width // 4), max(1, height // 4)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / 4.0)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR).reshape(image.shape)


def reflect_from(source: np.ndarray, part: np.ndarray, target: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols) of the target texels (not source, on a part) that found a source texel to take detail from,
    and (rows, cols) of that texel: a texel at distance d from the source mirrors through its nearest source texel
    q to d beyond it (folded every `FOLD_TEXELS`); where that lands off the source or on another part, it tries the
    same direction at `RETRY_DEPTHS` of the depth, then a `WINDOW_TEXELS` window beside q tiled (mirror-wise)
    by the texel's own position (so a failed reflection still varies from texel to texel instead of staying
    flat). Texels whose nearest source texel is on another part (the UV layout puts islands of other parts
    between) search again among their own part's source texels only."""
    py, px = np.nonzero(target & ~source & (part >= 0))
    found_y, found_x = _reflect(source, part, source, py, px)
    for p in np.unique(part[py[found_y < 0], px[found_y < 0]]):
        own = source & (part == p)
        open_ = np.flatnonzero((found_y < 0) & (part[py, px] == p))
        if not own.any() or not len(open_):
            continue
        found_y[open_], found_x[open_] = _reflect(source, part, own, py[open_], px[open_])
    hit = found_y >= 0
    return py[hit], px[hit], found_y[hit], found_x[hit]


def _reflect(source: np.ndarray, part: np.ndarray, nearest_of: np.ndarray, py: np.ndarray, px: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """(N,) rows and cols of the source texel each (py, px) takes detail from through its nearest texel of
    `nearest_of` (-1 where every candidate missed; see `reflect_from`)."""
    import cv2

    distance, labels = cv2.distanceTransformWithLabels((~nearest_of).astype(np.uint8), cv2.DIST_L2, 5,
                                                       labelType=cv2.DIST_LABEL_PIXEL)
    rows, cols = np.nonzero(nearest_of)
    order = np.zeros(labels.max() + 1, dtype=np.int64)
    order[labels[rows, cols]] = np.arange(len(rows))
    nearest = order[labels[py, px]]
    qy, qx = rows[nearest].astype(np.float32), cols[nearest].astype(np.float32)
    d = np.maximum(distance[py, px], 1e-3)
    depth = FOLD_TEXELS - np.abs(d % (2 * FOLD_TEXELS) - FOLD_TEXELS)  # 0 .. FOLD_TEXELS, continuous in d
    uy, ux = (qy - py) / d, (qx - px) / d  # unit step from the texel towards (and past) its nearest source texel
    half = WINDOW_TEXELS // 2
    period = 2 * WINDOW_TEXELS  # the texel's place in the window, tiled mirror-wise (continuous: no block seams)
    wy, wx = np.abs(py % period - WINDOW_TEXELS) - half, np.abs(px % period - WINDOW_TEXELS) - half
    candidates = [(qy + uy * np.maximum(depth * f, 1.0), qx + ux * np.maximum(depth * f, 1.0)) for f in RETRY_DEPTHS]
    candidates += [(qy + uy * (half + 1) + wy, qx + ux * (half + 1) + wx), (qy + wy, qx + wx)]
    found_y, found_x = np.full(len(py), -1, np.int64), np.full(len(py), -1, np.int64)
    size_y, size_x = source.shape
    for cy, cx in candidates:
        open_ = found_y < 0
        if not open_.any():
            break
        ty, tx = np.rint(cy[open_]).astype(np.int64), np.rint(cx[open_]).astype(np.int64)
        inside = (ty >= 0) & (ty < size_y) & (tx >= 0) & (tx < size_x)
        ty, tx = np.clip(ty, 0, size_y - 1), np.clip(tx, 0, size_x - 1)
        ok = inside & source[ty, tx] & (part[ty, tx] == part[py[open_], px[open_]])
        where = np.flatnonzero(open_)[ok]
        found_y[where], found_x[where] = ty[ok], tx[ok]
    return found_y, found_x


def side_and_up(normals: np.ndarray, front: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) how edge-on each normal is to the photo's horizontal viewing axis `front` (0 facing it or facing away,
    1 sideways) and (N,) its upward (+z) component."""
    axis = np.asarray(front, dtype=np.float64).copy()
    axis[2] = 0.0
    axis /= max(float(np.linalg.norm(axis)), 1e-12)
    return 1.0 - np.abs(normals @ axis), normals[:, 2]


def fit_shading(lum: np.ndarray, part: np.ndarray, side: np.ndarray, up: np.ndarray,
                photo: np.ndarray) -> tuple[float, float]:
    """(side slope, up slope): the photo texels' luminance relative to their part's median, least squares against
    `side` and `up`, bounded (`SIDE_SLOPE`, `UP_SLOPE`); (0, 0) when too few photo texels."""
    if photo.sum() < MIN_FIT:
        return 0.0, 0.0
    rel = np.zeros(len(lum))
    for p in np.unique(part[photo]):
        members = photo & (part == p)
        rel[members] = lum[members] / max(float(np.median(lum[members])), 1.0) - 1.0
    design = np.column_stack([side[photo] - side[photo].mean(), up[photo] - up[photo].mean()])
    (a, b), *_ = np.linalg.lstsq(design, rel[photo] - rel[photo].mean(), rcond=None)
    return float(np.clip(a, *SIDE_SLOPE)), float(np.clip(b, *UP_SLOPE))


def shading(side: np.ndarray, up: np.ndarray, slopes: tuple[float, float], made: np.ndarray) -> np.ndarray:
    """(N,) light factors for the texels: 1 where nothing is made up, the fitted shading (mean 1 over the
    made-up texels) where it is, blended by how made-up each texel is."""
    a, b = slopes
    term = a * side + b * up
    weights = np.clip(made, 0.0, 1.0)
    mean = float((term * weights).sum() / weights.sum()) if weights.sum() > 0 else 0.0
    return 1.0 + weights * (term - mean)


def apply(colour: np.ndarray, made: np.ndarray, grain: np.ndarray, light: np.ndarray) -> np.ndarray:
    """(N, 3) the colours with the made-up texels modulated by the (N, 3) colour grain (each channel by the
    photo's relative detail in it, so its hue varies as the photo's does), then lit."""
    factor = (1.0 + np.clip(made, 0.0, 1.0)[:, None] * grain) * light[:, None]
    return np.clip(colour * factor, 0.0, 255.0)


def strands(points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """(N,) a zero-mean pattern of about unit spread: streaks along the height (z), across the arc length round a
    vertical axis through `centre` (x, y), waving slowly along their length."""
    rng = np.random.default_rng(STRAND_SEED)
    arc = (np.arctan2(points[:, 1] - centre[1], points[:, 0] - centre[0]) * 0.1).astype(np.float32)  # metres, r 10 cm
    z = points[:, 2].astype(np.float32)
    out = np.zeros(len(points), dtype=np.float32)
    for _ in range(STRAND_WAVES):
        spacing = rng.uniform(*STRAND_MM) / 1000.0
        wave = rng.uniform(0.001, 0.003) * np.sin(2 * np.pi * z / rng.uniform(0.08, 0.2) + rng.uniform(0, 2 * np.pi))
        out += np.sin(2 * np.pi * (arc + wave) / spacing + rng.uniform(0, 2 * np.pi))
    return out / np.sqrt(STRAND_WAVES / 2)


def hair_strands(colour: np.ndarray, made: np.ndarray, hair_lab_distance: np.ndarray,
                 pattern: np.ndarray) -> np.ndarray:
    """(N, 3) the colours with the strand pattern on made-up texels whose colour is the hair's."""
    weight = np.clip(made, 0.0, 1.0) * np.clip((HAIR_NEAR - hair_lab_distance) / (HAIR_NEAR / 2), 0.0, 1.0)
    gain_rel, gain_abs = STRAND_GAIN
    dark = np.clip(1.0 - (colour @ LUMA) / 128.0, 0.0, 1.0)[:, None]
    delta = (weight * pattern)[:, None] * (colour * gain_rel + gain_abs * dark)
    return np.clip(colour + delta, 0.0, 255.0)
