"""The backdrop of a product photo: a model of its colour, and per-pixel measures against it.

The background colour is modelled from the picture's border as a quadratic surface per Lab channel (a
vignette or a lit backdrop still fits), ignoring border pixels the garment touches and flat frame strips
(a pasted band, an empty margin). Pixels are then measured against it: colour distance (Delta E 1976),
fine texture (fabric has weave, a backdrop has none), and shadow-likeness (darker, neutral, smooth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Background:
    """The background model: its Lab colour at every pixel, its noise and the frame strips."""

    lab: np.ndarray  # (H, W, 3) float32
    sigma: float  # robust std of the border around the model, in Lab units
    frame: np.ndarray  # (H, W) bool: uniform full-length strips at the image edge
    texture: float  # how much fine texture (see local_std) the backdrop itself has: its noise


def local_std(plane: np.ndarray) -> np.ndarray:
    """Fine texture: the median, over a 5 x 5 window, of what a light blur removes (L units). Fabric has
    weave and noise everywhere; a studio backdrop (above all a composited one) has none, nor has a soft
    shadow or a lighting gradient (a blur leaves them as they are), and a thin seam between two flat
    areas (a pasted photo's edge) covers too little of the window to lift the median."""
    import cv2

    detail = np.abs(plane - cv2.GaussianBlur(plane, (0, 0), 1.5))
    return cv2.medianBlur(detail.astype(np.float32), 5)


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 Lab (L in 0..100)."""
    import cv2

    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def _flat_run(flat: np.ndarray, limit: int) -> int:
    """How many of the first `limit` entries of `flat` are True in a row."""
    return int(np.cumprod(flat[:limit]).sum())


def lab_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel Delta E (1976) between two (H, W, 3) float32 Lab images."""
    import cv2

    d = cv2.subtract(a, b)
    return cv2.sqrt(cv2.transform(cv2.multiply(d, d), np.ones((1, 3), np.float32)))


def chroma_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel distance in the a-b plane (colour, ignoring lightness)."""
    import cv2

    return cv2.magnitude(cv2.subtract(a[..., 1], b[..., 1]), cv2.subtract(a[..., 2], b[..., 2]))


def frame_insets(lab: np.ndarray, max_fraction: float, tolerance: float = 2.0) -> tuple[int, int, int, int]:
    """(top, bottom, left, right): how many rows / columns at each edge are one flat colour end to end (a
    pasted band, an empty margin). Inside them lies the picture whose border models the background."""
    h, w = lab.shape[:2]
    rows, cols = int(h * max_fraction), int(w * max_fraction)

    def flat(strip: np.ndarray, axis: int) -> np.ndarray:
        return strip.std(axis=axis).max(axis=-1) < tolerance

    return (_flat_run(flat(lab[:rows], 1), rows), _flat_run(flat(lab[h - rows:][::-1], 1), rows),
            _flat_run(flat(lab[:, :cols], 0), cols), _flat_run(flat(lab[:, w - cols:][:, ::-1], 0), cols))


def _frame_mask(shape: tuple[int, int], insets: tuple[int, int, int, int]) -> np.ndarray:
    top, bottom, left, right = insets
    frame = np.ones(shape, bool)
    frame[top:shape[0] - bottom, left:shape[1] - right] = False
    return frame


def _ring(shape: tuple[int, int], insets: tuple[int, int, int, int], width: int) -> np.ndarray:
    """A band `width` px wide just inside the frame."""
    top, bottom, left, right = insets
    h, w = shape
    inner = ~_frame_mask(shape, insets)
    core = np.zeros(shape, bool)
    core[top + width:h - bottom - width, left + width:w - right - width] = True
    return inner & ~core


def border_ring(h: int, w: int, width: int) -> np.ndarray:
    """The outermost `width` px of an (h, w) image."""
    return _ring((h, w), (0, 0, 0, 0), width)


def _design(ys: np.ndarray, xs: np.ndarray, h: int, w: int) -> np.ndarray:
    y, x = ys / h - 0.5, xs / w - 0.5
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)


def fit_background(lab: np.ndarray, insets: tuple[int, int, int, int]) -> Background:
    """A quadratic surface per Lab channel through the picture's border, refit without the outliers (the
    garment where it touches the border)."""
    h, w = lab.shape[:2]
    ring = _ring((h, w), insets, max(3, min(h, w) // 100))
    ys, xs = (v[::2] for v in np.nonzero(ring))  # every other ring pixel is plenty
    values = lab[ys, xs].astype(np.float64)
    keep = np.linalg.norm(values - np.median(values, axis=0), axis=1) < 12.0
    if keep.sum() < 50:
        keep = np.ones(len(values), bool)
    design = _design(ys.astype(np.float64), xs.astype(np.float64), h, w)
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)
        residual = np.linalg.norm(values - design @ coef, axis=1)
        sigma = float(1.4826 * np.median(residual[keep]))
        keep = residual < max(3.0, 4.0 * sigma)
    texture = float(np.percentile(local_std(lab[..., 0])[ys[keep], xs[keep]], 90))
    return Background(surface(coef, h, w), sigma, _frame_mask((h, w), insets), texture)


def surface(coef: np.ndarray, h: int, w: int) -> np.ndarray:
    """(H, W, 3) float32: the quadratic model on a grid 8x coarser, interpolated (it is smooth)."""
    import cv2

    gh, gw = max(2, h // 8), max(2, w // 8)
    x = ((np.arange(gw, dtype=np.float32) + 0.5) / gw - 0.5)[None, :, None]
    y = ((np.arange(gh, dtype=np.float32) + 0.5) / gh - 0.5)[:, None, None]
    c = coef.astype(np.float32)
    coarse = c[0] + c[1] * x + c[2] * y + c[3] * x * x + c[4] * x * y + c[5] * y * y
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)


def flat_areas(texture: np.ndarray, threshold: float) -> np.ndarray:
    """Where there is no fabric texture. Textured areas thinner than 5 px (the seam of a pasted photo, a
    line of JPEG ringing) do not count: fabric comes in patches."""
    import cv2

    textured = (texture >= threshold).astype(np.uint8)
    return cv2.morphologyEx(textured, cv2.MORPH_OPEN, disc(5)) == 0


def shadow_like(lab: np.ndarray, bg: Background) -> np.ndarray:
    """Light, neutral, smooth darkening of the background: a drop shadow, not fabric."""
    import cv2

    d_light = lab[..., 0] - bg.lab[..., 0]
    d_chroma = chroma_distance(lab, bg.lab)
    light = lab[..., 0]
    slope = cv2.magnitude(cv2.Sobel(light, cv2.CV_32F, 1, 0), cv2.Sobel(light, cv2.CV_32F, 0, 1)) / 8.0
    smooth = cv2.blur(slope, (5, 5)) < 1.0 + bg.sigma  # L units per px
    return (d_light < 0) & (d_light > -22.0) & (d_chroma < 2.5 + 2.0 * bg.sigma) & smooth


def disc(size: int) -> np.ndarray:
    import cv2

    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
