"""The photo's background inside the person mask: what of the mask's edge is the surroundings, by colour.

The person mask (mediapipe's soft segmentation, upscaled from its crop) is coarse at its edge: it takes in grass
round the feet, the wall beside the arms, the street between the legs. Projected onto the body, those pixels put
the surroundings on the skin. A pixel of the mask's edge band (`EDGE_BAND` of the photo's height) is background
where its colour is near the background just outside the mask there and clearly farther from the person just
inside it, both judged locally: the background's colour there is the photo (blurred over `LOCAL` of the height)
at the nearest pixel of a ring outside the mask (`RING`), the person's at the nearest pixel of the mask deeper
than the band. A pixel counts as background within `NEAR` Lab units of the background and `MARGIN` nearer to it
than to the person. Local, not global: a grey cap against a green hedge is not the grey street at the feet, a skirt's
highlight is nearer the skirt just inside than the wall outside. Background deeper in the mask than the band (a
hole between the legs the mask filled) stays: nothing local tells it apart.

Computed at half the photo's resolution (the mask is coarser than that). Plain numpy and cv2 (imported inside).
"""

from __future__ import annotations

import numpy as np

RING = (0.008, 0.03)  # the background sampled this far outside the mask (shares of the photo's height)
EDGE_BAND = 0.025  # only the mask's pixels within this of its edge can be background; deeper ones are the person
LOCAL = 0.004  # the reference colours are the photo blurred over this share of the height
NEAR = 14.0  # Lab units (OpenCV 8-bit scale): a pixel this near the background there ...
MARGIN = 6.0  # ... and this much nearer to it than to the person there is background
SCALE = 0.5  # worked at this share of the photo's resolution


def _nearest_colour(lab: np.ndarray, region: np.ndarray, at: tuple[np.ndarray, ...]) -> np.ndarray:
    """(N, 3) the colour of the `region` pixel nearest to each pixel `at` (row, col)."""
    import cv2

    _, labels = cv2.distanceTransformWithLabels((~region).astype(np.uint8), cv2.DIST_L2, 3,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    rows, cols = np.nonzero(region)
    order = np.zeros(labels.max() + 1, dtype=np.int64)
    order[labels[rows, cols]] = np.arange(len(rows))
    nearest = order[labels[at[0], at[1]]]
    return lab[rows[nearest], cols[nearest]]


def _found(lab: np.ndarray, person: np.ndarray, height: int) -> np.ndarray:
    """The test at the working resolution, on a crop round the person (`height`: the whole photo's, in pixels at
    this resolution): (h, w) bool background pixels of `person`."""
    import cv2

    outside = cv2.distanceTransform((~person).astype(np.uint8), cv2.DIST_L2, 3)  # how far out of the mask
    inside = cv2.distanceTransform(person.astype(np.uint8), cv2.DIST_L2, 3)  # how deep in it
    ring = (outside >= RING[0] * height) & (outside <= RING[1] * height)
    deep = inside > EDGE_BAND * height
    band = person & ~deep
    found = np.zeros(person.shape, dtype=bool)
    if not ring.any() or not deep.any() or not band.any():
        return found
    at = np.nonzero(band)
    colour = lab[at]
    local = cv2.GaussianBlur(lab, (0, 0), max(1.0, LOCAL * height))  # the references: local colours, not one pixel
    to_background = np.linalg.norm(colour - _nearest_colour(local, ring, at), axis=1)
    to_person = np.linalg.norm(colour - _nearest_colour(local, deep, at), axis=1)
    found[at] = (to_background < NEAR) & (to_person > to_background + MARGIN)
    return found


def background_in_mask(photo: np.ndarray, person: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of the `person` mask (bool, the photo's frame) that are the photo's background by
    colour (see the module docstring)."""
    import cv2

    height, width = person.shape
    if not person.any() or person.all():
        return np.zeros(person.shape, dtype=bool)
    size = (max(8, round(width * SCALE)), max(8, round(height * SCALE)))
    small = cv2.resize(np.ascontiguousarray(photo[..., :3], dtype=np.uint8), size, interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2Lab).astype(np.float32)
    inside = cv2.resize(person.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    rows, cols = np.nonzero(inside)
    pad = round(RING[1] * size[1]) + 2
    y0, y1 = max(0, rows.min() - pad), min(size[1], rows.max() + pad + 1)
    x0, x1 = max(0, cols.min() - pad), min(size[0], cols.max() + pad + 1)
    found = np.zeros(inside.shape, np.uint8)
    found[y0:y1, x0:x1] = _found(lab[y0:y1, x0:x1], inside[y0:y1, x0:x1], size[1])
    return (cv2.resize(found, (width, height), interpolation=cv2.INTER_NEAREST) > 0) & person
