"""Classical garment segmentation for product photos on plain backgrounds (flat-lay or ghost mannequin).

Why classical: product photos are shot (or composited) on an even background, so "what differs from the
background" is most of the answer, and it runs in tens of milliseconds on a CPU with no weights.

The steps, at a working size of 640 px on the long side, then at full size for the outline:
1. the backdrop's colour is modelled from the border (backdrop.py); every pixel gets its colour distance
   to it and its fine texture; Canny edges on L, a and b add the outlines colour alone misses;
2. the background is what the border reaches through flat, background-coloured (or shadow-like) pixels
   without crossing an edge or squeezing through a passage narrower than a few pixels;
3. enclosed regions of the backdrop's exact colour and flatness stay holes when they lie near the outside
   (between a strap and a sleeve, a trouser crotch closed by a flared hem) or are large (a keyhole); a
   white print or label deep inside a garment does not;
4. sure garment is what is textured and clearly off the backdrop's colour, or deep inside the outline;
   a marker watershed settles the rest along the strongest colour change;
5. at full size, a few pixel layers of backdrop colour (JPEG ringing, a soft shadow's rim) are peeled off
   the outline, and specks are dropped.

A ghost mannequin's visible inside-back is fabric, so it stays in the mask; phase 3 gives the neck region
the person's own appearance anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.wardrobe.backdrop import (
    Background,
    border_ring,
    chroma_distance,
    disc,
    fit_background,
    flat_areas,
    frame_insets,
    lab_distance,
    local_std,
    shadow_like,
    to_lab,
)


@dataclass(frozen=True)
class MaskSettings:
    work_side: int = 640  # long side of the working image, px
    frame_max: float = 0.05  # uniform strips at the image edge up to this fraction are frame, not garment
    bg_tolerance: float = 1.2  # a flat pixel this close (Lab, plus 3 noise sigmas) may be background
    strong_distance: float = 3.0  # a textured pixel this far (Lab, plus 4 noise sigmas) is sure garment
    exact_tolerance: float = 1.2  # closer than this (plus noise) a pixel is the background's very colour
    flat_texture: float = 0.03  # fine texture (L units) below which a pixel is as flat as a clean backdrop
    edge_gap: int = 2  # edges are dilated by this many px, closing outline gaps up to twice that
    squeeze: int = 5  # the background does not flow through passages narrower than this (px)
    hole_tolerance: float = 1.5  # an enclosed hole matches the background within this (Lab), plus noise
    hole_near: float = 0.04  # ... and lies within this fraction of the garment's width from the outside
    hole_min_area: float = 0.0004  # ... and covers at least this fraction of the image
    hole_texture: float = 0.12  # ... and its median fine texture is below this (narrow gaps pick up their rims')
    hole_big_area: float = 0.005  # an opening this large (a keyhole) counts wherever it is
    inside_depth: float = 12.0  # px: unreached pixels this deep inside the outline are garment
    keep_part: float = 0.03  # garment parts smaller than this fraction of the largest are dropped


def edge_map(lab: np.ndarray, sigma: float) -> np.ndarray:
    """Canny on L, a and b (so same-brightness colour edges count), thresholds above the background noise."""
    import cv2

    smooth = cv2.GaussianBlur(lab, (0, 0), 1.0)
    edges = np.zeros(lab.shape[:2], bool)
    for channel, scale in ((0, 2.55), (1, 2.0), (2, 2.0)):
        plane = np.clip(smooth[..., channel] * scale + (0 if channel == 0 else 128), 0, 255).astype(np.uint8)
        low = max(6.0, 3.0 * sigma * scale)
        edges |= cv2.Canny(plane, low, 2.5 * low, L2gradient=True) > 0
    return edges


def border_reached(passable: np.ndarray) -> np.ndarray:
    """The passable pixels connected (4-way) to the image border."""
    import cv2

    count, labels = cv2.connectedComponents(passable.astype(np.uint8), connectivity=4)
    ring = border_ring(passable.shape[0], passable.shape[1], 1) & passable
    reached = np.zeros(count, bool)
    reached[np.unique(labels[ring])] = True
    reached[0] = False
    return reached[labels] & passable


def _component_medians(labels: np.ndarray, chosen: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Median of `values` over each chosen component (NaN elsewhere); medians ignore the ringing rim."""
    out = np.full(len(chosen), np.nan)
    for index in np.flatnonzero(chosen):
        out[index] = float(np.median(values[labels == index]))
    return out


def hole_markers(enclosed: np.ndarray, distance: np.ndarray, texture: np.ndarray, edges: np.ndarray,
                 bg: Background, settings: MaskSettings) -> np.ndarray:
    """Enclosed regions that are background showing through: the background's exact colour and flatness,
    and either close to the outside (a strap or a thin band away) or large (a keyhole). A white print or a
    white label inside a garment is neither, so it stays garment."""
    import cv2

    h, w = enclosed.shape
    tight = settings.hole_tolerance + 2.0 * bg.sigma
    candidate = enclosed & (distance < tight) & ~edges
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidate.astype(np.uint8), connectivity=4)
    if count <= 1:
        return np.zeros_like(enclosed)
    cols = np.flatnonzero(enclosed.any(axis=0))
    width = (cols[-1] - cols[0] + 1) if cols.size else w
    depth = cv2.distanceTransform(enclosed.astype(np.uint8), cv2.DIST_L2, 3)
    near = np.zeros(count, bool)
    near[np.unique(labels[(depth <= max(3.0, settings.hole_near * width)) & candidate])] = True
    area = stats[:, cv2.CC_STAT_AREA] / float(h * w)
    chosen = ((area >= settings.hole_min_area) & near) | (area >= settings.hole_big_area)
    chosen[0] = False
    exact = _component_medians(labels, chosen, distance) < 0.5 * tight
    flat = _component_medians(labels, chosen, texture) < max(settings.hole_texture, 1.5 * bg.texture)
    return (chosen & exact & flat)[labels]


def watershed(rgb: np.ndarray, background: np.ndarray, garment: np.ndarray) -> np.ndarray:
    """Settle the pixels that are neither sure background nor sure garment along the strongest colour
    change between them (a marker watershed); the watershed lines go to the garment."""
    import cv2

    markers = np.zeros(rgb.shape[:2], np.int32)
    markers[background] = 1
    markers[garment & ~background] = 2
    cv2.watershed(cv2.GaussianBlur(np.ascontiguousarray(rgb[..., ::-1]), (3, 3), 0), markers)
    return markers != 1


def keep_garment_parts(mask: np.ndarray, keep_part: float) -> np.ndarray:
    """Drop specks: keep the largest part and any part at least `keep_part` of its size."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    areas[0] = 0
    return (areas >= max(1.0, keep_part * areas.max()))[labels]


@dataclass(frozen=True)
class Measures:
    """Per-pixel measures of a working-size photo against its backdrop."""

    bg: Background
    distance: np.ndarray  # Delta E to the backdrop
    edges: np.ndarray  # Canny on L, a, b
    texture: np.ndarray  # fine texture of L
    shadow: np.ndarray  # shadow-like darkening of the backdrop
    like_bg: np.ndarray  # flat and of the backdrop's colour, or a shadow


def measure(rgb: np.ndarray, settings: MaskSettings) -> Measures:
    lab = to_lab(rgb)
    bg = fit_background(lab, frame_insets(lab, settings.frame_max))
    distance = lab_distance(lab, bg.lab)
    texture = local_std(lab[..., 0])
    shadow = shadow_like(lab, bg)
    flat = flat_areas(texture, max(settings.flat_texture, 2.0 * bg.texture))
    like_bg = ((distance < settings.bg_tolerance + 3.0 * bg.sigma) | shadow) & flat
    return Measures(bg, distance, edge_map(lab, bg.sigma), texture, shadow, like_bg)


def reach_outside(m: Measures, settings: MaskSettings) -> np.ndarray:
    """The background the border reaches through background-like pixels, not crossing a (slightly
    widened) edge nor squeezing through a passage narrower than `settings.squeeze`."""
    import cv2

    barrier = cv2.dilate(m.edges.astype(np.uint8), np.ones((2 * settings.edge_gap + 1,) * 2, np.uint8)) > 0
    passable = cv2.morphologyEx((m.like_bg & ~barrier).astype(np.uint8), cv2.MORPH_OPEN, disc(settings.squeeze))
    return border_reached((passable > 0) | m.bg.frame) | m.bg.frame


def garment_markers(m: Measures, sure_bg: np.ndarray, settings: MaskSettings) -> np.ndarray:
    """Sure garment: textured and clearly off the backdrop's colour (a shadow never is), or deep inside."""
    sigma = m.bg.sigma
    strong = (m.distance > settings.strong_distance + 4.0 * sigma) & ~m.like_bg & ~m.shadow
    inside = deep_inside(sure_bg, m.edges, settings.inside_depth) & (m.distance > settings.exact_tolerance + 3 * sigma)
    return (strong | inside) & ~sure_bg


def coarse_mask(rgb: np.ndarray, settings: MaskSettings) -> tuple[np.ndarray, Background]:
    """The binary garment mask of a working-size image, and the backdrop model found on the way."""
    m = measure(rgb, settings)
    outside = reach_outside(m, settings)
    sure_bg = outside | hole_markers(~outside, m.distance, m.texture, m.edges, m.bg, settings)
    sure_fg = garment_markers(m, sure_bg, settings)
    if not sure_fg.any():
        return np.zeros(rgb.shape[:2], bool), m.bg
    return keep_garment_parts(watershed(rgb, sure_bg, sure_fg), settings.keep_part), m.bg


def deep_inside(sure_bg: np.ndarray, edges: np.ndarray, depth: float) -> np.ndarray:
    """Pixels well inside the outline (the interior of a white shirt on white): far from the background and
    at least half that far from any edge, which a narrow channel of background (a trouser crotch) is not."""
    import cv2

    far_bg = cv2.distanceTransform((~sure_bg).astype(np.uint8), cv2.DIST_L2, 3) > depth
    far_edge = cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, 3) > depth / 2
    return far_bg & far_edge


def peel(mask: np.ndarray, peelable: np.ndarray, steps: int) -> np.ndarray:
    """Strip background-coloured pixels (or shadow) off the mask's outer edge, one pixel layer at a time,
    stopping where the garment's own colour begins."""
    import cv2

    kernel = np.ones((3, 3), np.uint8)
    mask = mask.copy()
    for _ in range(steps):
        edge = mask & (cv2.erode(mask.astype(np.uint8), kernel) == 0) & peelable
        if not edge.any():
            break
        mask &= ~edge
    return mask


def peelable(rgb: np.ndarray, bg_lab: np.ndarray, sigma: float) -> np.ndarray:
    """Pixels that may be stripped off the mask's edge: the background's colour once JPEG ringing is
    smoothed away, or a soft neutral shadow (darker, grey, without a sharp edge)."""
    import cv2

    smooth = to_lab(cv2.GaussianBlur(rgb, (0, 0), 1.0))
    d_light = smooth[..., 0] - bg_lab[..., 0]
    neutral = chroma_distance(smooth, bg_lab) < 3.0 + 2.0 * sigma
    light = np.ascontiguousarray(smooth[..., 0])
    slope = cv2.magnitude(cv2.Sobel(light, cv2.CV_32F, 1, 0), cv2.Sobel(light, cv2.CV_32F, 0, 1)) / 8.0
    shadow = neutral & (d_light < 0) & (d_light > -25.0) & (slope < 4.0)
    return (lab_distance(smooth, bg_lab) < 2.5 + 3.0 * sigma) | shadow


def full_size_mask(rgb: np.ndarray, coarse: np.ndarray, bg: Background, steps: int) -> np.ndarray:
    """Bring the working-size mask to the photo's size and peel the background halo off its edge, working
    only inside the box around the mask's outline band."""
    import cv2

    h, w = rgb.shape[:2]
    mask = cv2.resize(coarse.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_LINEAR) > 127
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return mask
    y0, y1 = max(0, rows[0] - 2), min(h, rows[-1] + 3)
    x0, x1 = max(0, cols[0] - 2), min(w, cols[-1] + 3)
    bg_lab = cv2.resize(bg.lab, (w, h), interpolation=cv2.INTER_LINEAR)[y0:y1, x0:x1]
    mask[y0:y1, x0:x1] = peel(mask[y0:y1, x0:x1], peelable(rgb[y0:y1, x0:x1], bg_lab, bg.sigma), steps)
    return mask


def working_size(shape: tuple[int, ...], side: int) -> tuple[int, int]:
    """(width, height) with the long side at most `side`."""
    h, w = shape[:2]
    scale = min(1.0, side / max(h, w))
    return max(1, round(w * scale)), max(1, round(h * scale))


def segment_garment(rgb: np.ndarray, settings: MaskSettings | None = None) -> np.ndarray:
    """(H, W) float32 alpha of the garment in a product photo: 1 garment, 0 background, holes kept.

    A photo with nothing on its background gives an all-zero alpha (the phase decides what that means).
    """
    import cv2

    settings = settings or MaskSettings()
    h, w = rgb.shape[:2]
    size = working_size(rgb.shape, settings.work_side)
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if size != (w, h) else rgb
    coarse, bg = coarse_mask(small, settings)
    steps = 2 + int(np.ceil(2.0 * w / size[0]))
    mask = keep_garment_parts(full_size_mask(rgb, coarse, bg, steps), settings.keep_part)
    return cv2.GaussianBlur(mask.astype(np.float32), (3, 3), 0.7)
