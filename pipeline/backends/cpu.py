"""The CPU default backends, one instance of each per process, created on first use and then shared.

Creating a backend object loads nothing: each builds its model on its first call (and guards it with a
lock, since the local runtime calls from several threads). `warm_up()` makes them build now, which a
Modal container does in `@modal.enter` and `dropfit models prepare` does once per machine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from pipeline.backends.config import ModelConfig
from pipeline.backends.protocols import BodyFitter, FaceEmbedder, GarmentSegmenter, PersonLandmarker, VisionLLM

T = TypeVar("T")


class CpuBackends:
    def __init__(self, config: ModelConfig | None = None) -> None:
        self.config = config or ModelConfig()
        self._lock = threading.Lock()
        self._made: dict[str, Any] = {}

    def _one(self, name: str, make: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._made:
                self._made[name] = make()
            return self._made[name]  # type: ignore[no-any-return]

    def landmarker(self) -> PersonLandmarker:
        from pipeline.backends.mediapipe_person import MediapipePersonLandmarker

        return self._one("landmarker", MediapipePersonLandmarker)

    def faces(self) -> FaceEmbedder:
        from pipeline.backends.dlib_face import DlibFaceEmbedder

        return self._one("faces", DlibFaceEmbedder)

    def body(self) -> BodyFitter:
        from pipeline.backends.anny_body import AnnyBodyFitter

        return self._one("body", lambda: AnnyBodyFitter(cache_dir=self.config.cache / "anny"))

    def garment_segmenter(self) -> GarmentSegmenter:
        from pipeline.backends.garment_mask import ClassicalGarmentSegmenter

        return self._one("garment_segmenter", ClassicalGarmentSegmenter)

    def vision_llm(self) -> VisionLLM | None:
        """The Gemini client when an API key is configured, else None (documented defaults apply)."""
        key = self.config.gemini_api_key
        if key is None or not key.get_secret_value():
            return None
        from pipeline.backends.gemini import GeminiVisionLLM

        return self._one("vision_llm", lambda: GeminiVisionLLM(
            api_key=key.get_secret_value(), model=self.config.gemini_model, base_url=self.config.gemini_base_url))

    def warm_up(self) -> None:
        """Build every local model now: one call each on a blank image (the body model builds its cache)."""
        blank = np.full((256, 192, 3), 255, dtype=np.uint8)
        self.landmarker().find_person(blank)
        self.faces().faces(blank)
        self.garment_segmenter().segment(blank)
        prepare = getattr(self.body(), "prepare", None)
        if callable(prepare):
            prepare()
