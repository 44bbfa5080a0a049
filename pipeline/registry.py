"""The product's phases: each row of the phase table bound to the backends its job's profile plans.

`product_registry(config)` returns at once. A phase's function (`Phase.run`) is imported on its first call and
given a dataclass of its backends by role (`Phase.backends`), built from the backend table on the first job that
needs each and reused for every later job in the process (a Modal container, a local runtime). A job whose
job.json asks for a narrower profile runs on that profile's backends (`ProfileBackends`); intake refuses one that
asks for a wider one. `registry.warm_up(phase)` loads one phase's backends ahead of time (a Modal container's
`@modal.enter`), `warm_up()` every phase's (`dropfit models prepare`).
"""

from __future__ import annotations

import dataclasses
import threading
import typing
from collections.abc import Callable
from typing import Any

from pipeline.backends.config import ModelConfig
from pipeline.backends.planned import PlannedBackends, resolve
from pipeline.backends.table import BACKENDS, BackendTable
from pipeline.phase_api import PhaseFn, PhaseIO, PhaseRegistry, PhaseResult, PhaseTask
from pipeline.phases import PHASES, Phase, PhaseTable


class ProfileBackends:
    """The deployment's `PlannedBackends`, and one more per narrower profile a job asks for (job.json), made
    on first use: a `gpu` deployment serves a `cpu` job with the CPU backends, never the other way round."""

    def __init__(self, config: ModelConfig, table: BackendTable = BACKENDS) -> None:
        self.config = config
        self.table = table
        self.deployment = PlannedBackends(config, table)
        self._others: dict[str, PlannedBackends] = {}
        self._lock = threading.Lock()

    def job_backends(self, requested: str | None) -> tuple[str, dict[str, str | None]]:
        """The job's profile and the backends that will really serve it (for its run keys)."""
        profile, _ = self.table.job_plan(self.config.profile, self.config.backends, requested)
        return profile, self.get(profile).serving_plan()

    def get(self, profile: str | None) -> PlannedBackends:
        """The backends for a job's profile (None or the deployment's: the deployment's own)."""
        if profile is None or profile == self.config.profile:
            return self.deployment
        self.table.job_plan(self.config.profile, self.config.backends, profile)  # refuses a wider one, here too
        with self._lock:
            if profile not in self._others:
                config = self.config.model_copy(update={"profile": profile, "backends": {}})
                self._others[profile] = PlannedBackends(config, self.table)
            return self._others[profile]


def backends_type(fn: Callable[..., Any]) -> type:
    """The dataclass a phase function takes as `backends` (its fields are the phase's roles)."""
    kind = typing.get_type_hints(fn).get("backends")
    if not (isinstance(kind, type) and dataclasses.is_dataclass(kind)):
        raise TypeError(f"{fn.__module__}.{fn.__name__} must take `backends: <a dataclass of its roles>`")
    return kind


def bound_phase(phase: Phase, profiles: ProfileBackends) -> PhaseFn:
    """The phase's function with its backends: imported on the first call, its backends per job profile."""
    loaded: list[tuple[Callable[..., PhaseResult], type]] = []

    def run(task: PhaseTask, io: PhaseIO) -> PhaseResult:
        if not loaded:
            fn = resolve(phase.run)
            loaded.append((fn, backends_type(fn)))
        fn, kind = loaded[0]
        return fn(task, io, kind(**profiles.get(task.profile).for_roles(phase.backends)))

    run.__qualname__ = run.__name__ = f"{phase.name}_phase"
    run.__module__ = phase.run.partition(":")[0]
    return run


def product_registry(config: ModelConfig | None = None, *, table: PhaseTable = PHASES,
                     backends: BackendTable = BACKENDS) -> PhaseRegistry:
    profiles = ProfileBackends(config or ModelConfig(), backends)

    def warm_up(phase_name: str | None) -> None:
        phases = [table[phase_name]] if phase_name is not None else list(table)
        profiles.deployment.warm_up(sorted({p for phase in phases for p in phase.protocols}))

    return PhaseRegistry({p.name: bound_phase(p, profiles) for p in table if p.run}, warm_up=warm_up,
                         job_backends=profiles.job_backends, table=table)


def phases_on_gpu(plan: dict[str, str | None], table: PhaseTable = PHASES, backends: BackendTable = BACKENDS
                  ) -> tuple[str, ...]:
    """The phases that need a GPU under a plan: those a backend of their roles (or one of its parts) runs on one.
    Pure data: the Modal app decides at deploy time which class each phase runs in."""
    return tuple(p.name for p in table
                 if any(plan.get(protocol) is not None and backends.needs_gpu(plan[protocol])  # type: ignore[arg-type]
                        for protocol in p.protocols))
