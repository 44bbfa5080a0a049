"""The product's phase implementations, bound to their model backends. Fakes live in tests/.

`product_registry(config)` returns at once: the backends the profile plans (`PlannedBackends`: the CPU
defaults, or the GPU adapters under `gpu`) are created on the first job
that needs each, and then reused for every later job in the process (a Modal container, a local
runtime). A job whose job.json asks for a narrower profile runs on that profile's backends
(`ProfileBackends`); intake refuses one that asks for a wider one. `registry.warm_up()` builds the
deployment's ahead of time (Modal's `@modal.enter`, `dropfit models prepare`).
"""

from __future__ import annotations

import threading

from pipeline.backends.config import ModelConfig
from pipeline.backends.licences import job_backends
from pipeline.backends.planned import PlannedBackends
from pipeline.phase_api import PhaseFn, PhaseIO, PhaseRegistry, PhaseResult, PhaseTask

NOT_YET: dict[str, str] = {}  # a phase listed here is planned but not built: jobs wait for it, saying why


class ProfileBackends:
    """The deployment's `PlannedBackends`, and one more per narrower profile a job asks for (job.json), made
    on first use: a `gpu` deployment serves a `cpu` job with the CPU backends, never the other way round."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.deployment = PlannedBackends(config)
        self._others: dict[str, PlannedBackends] = {}
        self._lock = threading.Lock()

    def job_backends(self, requested: str | None) -> tuple[str, dict[str, str | None]]:
        """The job's profile and the backends that will really serve it (for its run keys): Gemini only when an
        API key is configured, as the backends build it (`CpuBackends.vision_llm`)."""
        profile, plan = job_backends(self.config.profile, self.config.backends, requested)
        key = self.config.gemini_api_key
        if key is None or not key.get_secret_value():
            plan = {protocol: None if backend == "gemini" else backend for protocol, backend in plan.items()}
        return profile, plan

    def get(self, profile: str | None) -> PlannedBackends:
        """The backends for a job's profile (None or the deployment's: the deployment's own)."""
        if profile is None or profile == self.config.profile:
            return self.deployment
        job_backends(self.config.profile, self.config.backends, profile)  # refuses a wider one, again, here
        with self._lock:
            if profile not in self._others:
                self._others[profile] = PlannedBackends(self.config.model_copy(update={"profile": profile,
                                                                                       "backends": {}}))
            return self._others[profile]


def model_phases(profiles: ProfileBackends) -> dict[str, PhaseFn]:
    """Each model phase bound to the backends of its job's profile; they are fetched (built once) per call."""
    from pipeline.avatar.phase import AvatarBackends, build_avatar
    from pipeline.fitting.phase import FittingBackends, fit_and_render
    from pipeline.viewer3d.phase import build_viewer
    from pipeline.wardrobe.phase import WardrobeBackends, analyse_garment

    def avatar(task: PhaseTask, io: PhaseIO) -> PhaseResult:
        backends = profiles.get(task.profile)
        return build_avatar(task, io, AvatarBackends(backends.landmarker(), backends.faces(), backends.body()))

    def wardrobe(task: PhaseTask, io: PhaseIO) -> PhaseResult:
        backends = profiles.get(task.profile)
        return analyse_garment(task, io, WardrobeBackends(backends.garment_segmenter(), backends.vision_llm()))

    def fitting(task: PhaseTask, io: PhaseIO) -> PhaseResult:
        backends = profiles.get(task.profile)
        return fit_and_render(task, io, FittingBackends(backends.faces(), backends.judge(), backends.painter()))

    def viewer3d(task: PhaseTask, io: PhaseIO) -> PhaseResult:
        return build_viewer(task, io, profiles.get(task.profile).mesh_builder())

    return {"avatar": avatar, "wardrobe": wardrobe, "fitting": fitting, "viewer3d": viewer3d}


def product_registry(config: ModelConfig | None = None) -> PhaseRegistry:
    profiles = ProfileBackends(config or ModelConfig())
    implementations = model_phases(profiles)
    return PhaseRegistry(implementations, missing={k: v for k, v in NOT_YET.items() if k not in implementations},
                         warm_up=profiles.deployment.warm_up, job_backends=profiles.job_backends)
