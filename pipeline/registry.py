"""The product's phase implementations, bound to their model backends. Fakes live in tests/.

`product_registry(config)` returns at once: the backends the profile plans (`PlannedBackends`: the CPU
defaults, or the GPU adapters under `gpu`) are created on the first job
that needs each, and then reused for every later job in the process (a Modal container, a local
runtime). `registry.warm_up()` builds them ahead of time (Modal's `@modal.enter`, `dropfit models
prepare`).
"""

from __future__ import annotations

from pipeline.backends.config import ModelConfig
from pipeline.backends.planned import PlannedBackends
from pipeline.phase_api import PhaseFn, PhaseIO, PhaseRegistry, PhaseResult, PhaseTask

NOT_YET: dict[str, str] = {}  # a phase listed here is planned but not built: jobs wait for it, saying why


def model_phases(backends: PlannedBackends) -> dict[str, PhaseFn]:
    """Each model phase bound to the backends it uses; the backends are fetched (built once) per call."""
    from pipeline.avatar.phase import AvatarBackends, build_avatar
    from pipeline.fitting.phase import FittingBackends, fit_and_render
    from pipeline.viewer3d.phase import build_viewer
    from pipeline.wardrobe.phase import WardrobeBackends, analyse_garment

    def avatar(task: PhaseTask, io: PhaseIO) -> PhaseResult:
        return build_avatar(task, io, AvatarBackends(backends.landmarker(), backends.faces(), backends.body()))

    def wardrobe(task: PhaseTask, io: PhaseIO) -> PhaseResult:
        return analyse_garment(task, io, WardrobeBackends(backends.garment_segmenter(), backends.vision_llm()))

    def fitting(task: PhaseTask, io: PhaseIO) -> PhaseResult:
        return fit_and_render(task, io, FittingBackends(backends.faces(), backends.judge(), backends.painter()))

    def viewer3d(task: PhaseTask, io: PhaseIO) -> PhaseResult:
        return build_viewer(task, io, backends.mesh_builder())

    return {"avatar": avatar, "wardrobe": wardrobe, "fitting": fitting, "viewer3d": viewer3d}


def product_registry(config: ModelConfig | None = None) -> PhaseRegistry:
    backends = PlannedBackends(config)
    implementations = model_phases(backends)
    return PhaseRegistry(implementations, missing={k: v for k, v in NOT_YET.items() if k not in implementations},
                         warm_up=backends.warm_up)
