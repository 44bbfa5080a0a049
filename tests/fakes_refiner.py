"""A hand-written `ViewRefiner` for the fitting phase's refine step: real code behind the real protocol."""

from __future__ import annotations

import numpy as np

from pipeline.backends.protocols import RefineRequest


class BrighteningRefiner:
    """Adds `step` to every channel of every pixel outside the keep mask (the render's own pixels inside it), and
    records every batch of requests it was given."""

    name = "fake-refiner"
    version = "1"

    def __init__(self, step: int = 1) -> None:
        self.step = step
        self.batches: list[list[RefineRequest]] = []

    def refine(self, requests: list[RefineRequest]) -> list[np.ndarray]:
        self.batches.append(list(requests))
        out = []
        for request in requests:
            image = request.render.astype(np.int16)
            editable = request.keep_mask <= 0.5
            image[editable] += self.step
            out.append(np.clip(image, 0, 255).astype(np.uint8))
        return out
