"""The CPU default garment segmenter: classical image processing for product photos on plain backgrounds
(pipeline/wardrobe/mask.py). No weights; OpenCV loads on first use, not at import."""

from __future__ import annotations

import numpy as np

from pipeline.backends.table import BuildContext
from pipeline.wardrobe.mask import MaskSettings, segment_garment

VERSION = "1"


class ClassicalGarmentSegmenter:
    """Background model from the photo's border + colour distance + edges + watershed; holes kept."""

    name = "classical-garment-mask"

    def __init__(self, settings: MaskSettings | None = None) -> None:
        import cv2

        self.settings = settings or MaskSettings()
        self.version = f"{VERSION} (opencv {cv2.__version__})"

    def warm_up(self) -> None:
        self.segment(np.full((256, 192, 3), 255, dtype=np.uint8))

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W) float32 alpha; all zeros when nothing stands out from the background."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
        return segment_garment(rgb, self.settings)


def build(ctx: BuildContext) -> ClassicalGarmentSegmenter:
    return ClassicalGarmentSegmenter()
