"""The product's phase implementations, bound to their model backends. Fakes live in tests/.

`product_registry(config)` returns at once: the backends (`ModelBackends`) are built lazily, on the first
job that needs each, and then reused for every later job in the process (a Modal container, a local
runtime). `registry.warm_up()` builds them ahead of time (Modal's `@modal.enter`, `dropfit models
prepare`).
"""

from __future__ import annotations

from pipeline.backends.config import ModelConfig
from pipeline.phase_api import PhaseFn, PhaseRegistry

NOT_YET = {
    "avatar": "the body model (mediapipe landmarks, dlib face identity, anny body fit) is not in this build yet",
    "wardrobe": "garment analysis (mask, category, colours, size chart) is not in this build yet",
    "fitting": "the fit report and the 8-angle renders are not in this build yet",
    "viewer3d": "the textured GLB builder is not in this build yet",
}


def product_registry(config: ModelConfig | None = None) -> PhaseRegistry:
    config = config or ModelConfig()
    implementations: dict[str, PhaseFn] = {}
    return PhaseRegistry(implementations, missing={k: v for k, v in NOT_YET.items() if k not in implementations})
