"""How the try-on painter frames each view and masks it the way CatVTON-FLUX was trained: plain numpy and OpenCV.

CatVTON-FLUX (github.com/nftblackmagic/catvton-flux, `train_flux_inpaint.py` and `tryon_inference_lora.py`)
was trained on VITON-HD pairs at 576 x 768 and serves at 576 x 768 or 768 x 1024: each half of its diptych is a
3:4 portrait, the person framed from the head to below the garment, and the cloth a product shot filling its
half. Its masks are VITON-HD's agnostic masks, which the authors' notes (`TrainingNotes.md`, "Mask is Important")
say must be generous, so that the mask's outline does not dictate the garment's shape. CatVTON's own mask maker
(github.com/Zheng-Chong/CatVTON, `model/cloth_masker.py`, `AutoMasker.cloth_agnostic_mask`) makes them so: the
convex hull of the garment region, a Gaussian blur with a kernel of 1/25 of the image's longer side cut at 25/255
(which grows the region by about 1 % of the side and rounds it), then a dilation by a square of 1/250 of the side;
the face is protected. `agnostic_region` does the same on a view's garment region, in the 3:4 frame around the
garment and the kept face (`frame_box`), at the frame's scale; phase 3 asks for it on the rendered views, whose
garment regions are the dressed body's tight garment (`pipeline.fitting.tryon`). A request that brings its own
generous mask (the photo's agnostic mask, which never reaches the head or hands) is not grown again.
"""

from __future__ import annotations

import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1; a frame may reach past the image (padded when cropped)

ASPECT = (3, 4)  # width : height of each half of the diptych
FRAME_MARGIN = 0.08  # the frame: the box of the garment and the face, grown by this fraction of its longer side
BLUR_DIVISOR = 25  # CatVTON's agnostic mask: Gaussian kernel = longer side // 25 (odd), cut at BLUR_CUT / 255
BLUR_CUT = 25
DILATE_DIVISOR = 250  # then a square dilation of longer side // 250 (odd)
PRODUCT_MARGIN = 0.06  # the garment photo: cropped to its non-white content plus this fraction, then letterboxed
WHITE = 250  # a garment pixel with every channel at or above this is background


def odd(value: int) -> int:
    return value if value % 2 == 1 else value + 1


def _span(start: float, length: int, size: int) -> int:
    """The first pixel of a span of `length` that starts at `start`, moved inside [0, size) when it fits there."""
    first = int(round(start))
    if length <= size:
        first = min(max(first, 0), size - length)
    return first


def frame_box(paint_mask: np.ndarray, keep_mask: np.ndarray, aspect: tuple[int, int] = ASPECT,
              margin: float = FRAME_MARGIN) -> Box:
    """The 3:4 frame of a view: the box around the paint and keep masks, grown by `margin`, widened or heightened
    to `aspect` about its centre, and moved inside the image where it fits (else centred, reaching past it)."""
    height, width = paint_mask.shape
    ys, xs = np.nonzero((paint_mask > 0.5) | (keep_mask > 0.5))
    if len(xs) == 0:  # nothing to frame: the whole render
        x0, y0, x1, y1, grow = 0.0, 0.0, float(width), float(height), 0.0
    else:
        x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
        grow = margin * max(x1 - x0, y1 - y0)
    x0, y0, x1, y1 = x0 - grow, y0 - grow, x1 + grow, y1 + grow
    box_w, box_h = x1 - x0, y1 - y0
    if box_w * aspect[1] < box_h * aspect[0]:
        box_w = box_h * aspect[0] / aspect[1]
    else:
        box_h = box_w * aspect[1] / aspect[0]
    frame_h = int(np.ceil(box_h))
    frame_w = int(round(frame_h * aspect[0] / aspect[1]))
    left = _span((x0 + x1) / 2 - frame_w / 2, frame_w, width)
    top = _span((y0 + y1) / 2 - frame_h / 2, frame_h, height)
    return left, top, left + frame_w, top + frame_h


def crop(image: np.ndarray, box: Box, fill: float | int) -> np.ndarray:
    """`image` inside `box`, padded with `fill` where the box reaches past it."""
    x0, y0, x1, y1 = box
    height, width = image.shape[:2]
    out = np.full((y1 - y0, x1 - x0, *image.shape[2:]), fill, dtype=image.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def paste(image: np.ndarray, part: np.ndarray, box: Box) -> np.ndarray:
    """A copy of `image` with `part` (the size of `box`) over it, where the box is inside the image."""
    x0, y0, x1, y1 = box
    height, width = image.shape[:2]
    out = image.copy()
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0:sy1, sx0:sx1] = part[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0]
    return out


def agnostic_mask(region: np.ndarray, side: int) -> np.ndarray:
    """(H, W) bool: CatVTON's growth of a garment region for an image whose longer side is `side`: the convex
    hull of each outer contour, a Gaussian blur of kernel side // 25 cut at 25/255, a dilation of side // 250."""
    import cv2

    binary = (np.asarray(region) > 0.5).astype(np.uint8)
    if not binary.any():
        return binary.astype(bool)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = np.zeros_like(binary)
    for contour in contours:
        cv2.fillPoly(hull, [cv2.convexHull(contour)], 1)
    kernel = odd(max(1, side // BLUR_DIVISOR))
    blurred = cv2.GaussianBlur(hull * 255, (kernel, kernel), 0)
    grown = (blurred >= BLUR_CUT).astype(np.uint8)
    square = odd(max(1, side // DILATE_DIVISOR))
    if square > 1:
        grown = cv2.dilate(grown, np.ones((square, square), np.uint8), iterations=1)
    return grown > 0


def agnostic_region(region: np.ndarray, keep_mask: np.ndarray) -> np.ndarray:
    """(H, W) float32 in {0, 1}: a view's garment region grown as CatVTON grows its agnostic masks, at the scale
    of the view's 3:4 frame (so the growth does not depend on the render's size), never inside the keep mask."""
    x0, y0, x1, y1 = box = frame_box(region, keep_mask)
    grown = agnostic_mask(crop(np.asarray(region) > 0.5, box, False), max(x1 - x0, y1 - y0))
    full = paste(np.zeros(region.shape, dtype=bool), grown, box)
    return (full & ~(keep_mask > 0.5)).astype(np.float32)


def product_box(garment: np.ndarray, margin: float = PRODUCT_MARGIN) -> Box:
    """The box of the garment photo's non-white content grown by `margin` of its longer side (the whole photo when
    it is all white), inside the photo."""
    height, width = garment.shape[:2]
    ys, xs = np.nonzero((garment < WHITE).any(axis=2))
    if len(xs) == 0:
        return 0, 0, width, height
    grow = int(round(margin * max(xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min())))
    return (max(0, int(xs.min()) - grow), max(0, int(ys.min()) - grow),
            min(width, int(xs.max()) + 1 + grow), min(height, int(ys.max()) + 1 + grow))
