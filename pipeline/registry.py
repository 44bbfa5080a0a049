"""The product's phase implementations. Only real phases are registered here; fakes live in tests/.

Today no model phase has landed: the spine (intake, planning, claims, routing, publishing, batches)
is real and runs end to end with test phases; the model phases arrive with the next pieces of work.
"""

from __future__ import annotations

from pipeline.phase_api import PhaseFn, PhaseRegistry

NOT_YET = {
    "avatar": "the body model (mediapipe landmarks, dlib face identity, anny body fit) is not in this build yet",
    "wardrobe": "garment analysis (mask, category, colours, size chart) is not in this build yet",
    "fitting": "the fit report and the 8-angle renders are not in this build yet",
    "viewer3d": "the textured GLB builder is not in this build yet",
}


def product_registry() -> PhaseRegistry:
    implementations: dict[str, PhaseFn] = {}
    return PhaseRegistry(implementations, missing={k: v for k, v in NOT_YET.items() if k not in implementations})
