"""The phase's images: the RGBA cut-out, the texture crop, and the debug overlay that shows a person what
the phase saw (mask outline, category, colour swatches, print and texture boxes)."""

from __future__ import annotations

import numpy as np

from pipeline.wardrobe.contracts import Box, GarmentAnalysis

OUTLINE = (0, 200, 0)
PRINT = (230, 30, 30)
TEXTURE = (30, 90, 230)


def cutout(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8: the photo with the garment alpha."""
    a = (np.clip(alpha, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.dstack([rgb, a])


def crop(rgb: np.ndarray, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])


def _label(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    import cv2

    for colour, weight in (((255, 255, 255), 4), ((20, 20, 20), 1)):
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, max(1, int(weight * scale)),
                    cv2.LINE_AA)


def _box(image: np.ndarray, box: Box, colour: tuple[int, int, int], text: str, scale: float) -> None:
    import cv2

    x0, y0, x1, y1 = box
    cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), colour, max(1, int(2 * scale)))
    _label(image, text, (x0 + 4, max(12, y0 - 6)), 0.5 * scale)


def _swatches(image: np.ndarray, analysis: GarmentAnalysis, scale: float) -> None:
    import cv2

    size = int(28 * scale)
    for i, colour in enumerate(analysis.appearance.colours):
        y = int(10 * scale) + i * (size + 4)
        rgb = tuple(int(colour.hex[k:k + 2], 16) for k in (1, 3, 5))
        cv2.rectangle(image, (8, y), (8 + size, y + size), rgb, -1)
        cv2.rectangle(image, (8, y), (8 + size, y + size), (0, 0, 0), 1)
        _label(image, f"{colour.hex} {colour.share:.0%}", (14 + size, y + int(size * 0.7)), 0.45 * scale)


def overlay(rgb: np.ndarray, alpha: np.ndarray, analysis: GarmentAnalysis) -> np.ndarray:
    """The photo with the background faded, the mask outline, the boxes, the swatches and the category."""
    import cv2

    scale = max(0.6, max(rgb.shape[:2]) / 1024.0)
    a = np.clip(alpha, 0.0, 1.0)[..., None]
    image = (rgb * (0.35 + 0.65 * a) + 255.0 * 0.65 * (1.0 - a)).astype(np.uint8)
    contours, _ = cv2.findContours((alpha > 0.5).astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, OUTLINE, max(1, int(2 * scale)))
    appearance = analysis.appearance
    _box(image, appearance.texture_box, TEXTURE, "texture", scale)
    if appearance.print.box is not None:
        _box(image, appearance.print.box, PRINT, f"print ({appearance.print.kind})", scale)
    _swatches(image, analysis, scale)
    cat = analysis.category
    h = image.shape[0]
    _label(image, f"{cat.value} {cat.confidence:.2f} ({cat.source})", (8, h - int(40 * scale)), 0.8 * scale)
    _label(image, f"mask {analysis.mask.coverage:.0%}  holes {analysis.mask.holes}  "
                  f"defaults: {', '.join(analysis.defaults_used) or 'none'}", (8, h - int(12 * scale)), 0.45 * scale)
    return image
