"""Numbers about a garment mask: coverage, box, openings, pieces, and whether it runs off the photo."""

from __future__ import annotations

import numpy as np

from pipeline.wardrobe.contracts import MaskStats

MIN_HOLE = 0.0005  # openings (or pieces) smaller than this share of the image are specks


def count_holes(solid: np.ndarray) -> int:
    """Background regions enclosed by the garment (not connected to the photo's border), above MIN_HOLE."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats((~solid).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    areas = stats[:, cv2.CC_STAT_AREA]
    enclosed = np.setdiff1d(np.arange(1, count), border)
    return int((areas[enclosed] >= MIN_HOLE * solid.size).sum())


def count_parts(solid: np.ndarray) -> int:
    """Pieces of garment above MIN_HOLE of the image (a few stray anti-aliased pixels are no piece)."""
    import cv2

    count, _, stats, _ = cv2.connectedComponentsWithStats(solid.astype(np.uint8), connectivity=8)
    return max(1, int((stats[1:, cv2.CC_STAT_AREA] >= MIN_HOLE * solid.size).sum()))


def mask_stats(alpha: np.ndarray) -> MaskStats | None:
    """The stats of the garment (alpha > 0.5), or None when there is none."""
    solid = alpha > 0.5
    rows, cols = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
    if rows.size == 0:
        return None
    edge = solid[0].any() or solid[-1].any() or solid[:, 0].any() or solid[:, -1].any()
    return MaskStats(
        coverage=round(float(solid.mean()), 4),
        box=(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1),
        holes=count_holes(solid),
        parts=count_parts(solid),
        touches_border=bool(edge),
    )
