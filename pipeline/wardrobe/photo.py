"""The garment photo in and the phase's images out: decode (upright, with transparency kept), scale to the
analysis size, and encode PNGs. Plain PIL + numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.codec import WORKING_PIXELS, WORKING_SIDE, open_upright, upright_size
from pipeline.images import inspect_image

ANALYSIS_SIDE = 1024  # larger photos are analysed (and their outputs written) at this long side
CHART_SIDE = WORKING_SIDE  # a size chart keeps more pixels: its small print must stay legible
MIN_TRANSPARENT = 0.01  # a PNG whose alpha hides at least this share of pixels brings its own mask


@dataclass(frozen=True)
class Photo:
    rgb: np.ndarray  # (H, W, 3) uint8 at the analysis size; transparent parts composited on white
    alpha: np.ndarray | None  # (H, W) float32 in [0, 1] when the upload was a cut-out with transparency
    original_size: tuple[int, int]  # (width, height) as uploaded, upright


def decode_photo(data: bytes, what: str = "garment photo", side: int = ANALYSIS_SIDE) -> Photo:
    """Bytes -> Photo, or InvalidInput naming `what` (empty, not an image, truncated, too small)."""
    inspect_image(data, what)
    upright = open_upright(data, side, WORKING_PIXELS)  # decoded at the analysis size: memory stays bounded
    has_alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
    rgba = upright.convert("RGBA") if has_alpha else upright.convert("RGB")
    array = np.asarray(rgba, dtype=np.uint8)
    original = upright_size(data)
    if array.shape[2] == 3:
        return Photo(array.copy(), None, original)
    alpha = array[..., 3].astype(np.float32) / 255.0
    rgb = array[..., :3].astype(np.float32) * alpha[..., None] + 255.0 * (1.0 - alpha[..., None])
    transparent = float((alpha < 0.5).mean())
    own_mask = MIN_TRANSPARENT <= transparent <= 1.0 - MIN_TRANSPARENT
    return Photo(np.round(rgb).astype(np.uint8), alpha if own_mask else None, original)


def decode_rgb(data: bytes, what: str) -> np.ndarray:
    """Any other uploaded image (a size chart) as upright RGB, long side at most CHART_SIDE."""
    return decode_photo(data, what, CHART_SIDE).rgb
