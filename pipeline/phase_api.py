"""The fixed shape of a phase run: `(task, io) -> PhaseResult`, with storage reached only through `io`.

A phase reads its inputs and upstream runs and writes its output files through `PhaseIO`; it never
writes `_manifest.json` (the handler does, last) and never names the phase after it. Given the phase's row
of the table, `PhaseIO` refuses a read the row does not declare and a write of a file it does not list, so the
table stays the truth about what flows between phases.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from pipeline import layout
from pipeline.errors import PhaseUnavailable
from pipeline.manifests import FileEntry, RunManifest
from pipeline.phases import PHASES, Phase, PhaseTable
from pipeline.plan import InputRef, JobPlan
from pipeline.spec import JobSpec
from pipeline.state import run_manifest
from pipeline.storage import ObjectStore


class PhaseTask(BaseModel):
    """One phase run: everything it may read, by reference (never bytes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    phase: str
    run_key: str
    inputs: dict[str, InputRef]  # the job inputs this phase needs
    upstream: dict[str, str]  # phase name -> run key of each phase this one needs
    spec: JobSpec
    profile: str | None = None  # the backend profile the job runs under (JobPlan.profile); None = the deployment's

    @classmethod
    def from_plan(cls, plan: JobPlan, phase_name: str) -> PhaseTask:
        run = plan.run(phase_name)
        return cls(
            phase=phase_name,
            run_key=run.key,
            inputs={n: plan.inputs[n] for n in run.needs if n in plan.inputs},
            upstream={n: v for n, v in run.needs.items() if n not in plan.inputs},
            spec=plan.spec,
            profile=plan.profile,
        )

    @property
    def prefix(self) -> str:
        return layout.run_prefix(self.phase, self.run_key)


@dataclass(frozen=True)
class PhaseResult:
    """What a phase returns: a small JSON summary and the backends (with versions) it used."""

    data: dict[str, Any] = field(default_factory=dict)
    backends: dict[str, str] = field(default_factory=dict)


class UndeclaredAccess(LookupError):
    """A phase read or wrote a file its row of the phase table does not declare: a bug in the phase or the row."""


class PhaseIO:
    """A phase's window on storage: read inputs and upstream outputs, write own outputs atomically."""

    def __init__(self, store: ObjectStore, task: PhaseTask, declared: Phase | None = None) -> None:
        self._store = store
        self._task = task
        self._declared = declared  # the phase's row: reads and writes are checked against it
        self.written: list[FileEntry] = []

    def read_input(self, name: str) -> bytes:
        return self._store.get(self._task.inputs[name].key)

    def upstream_manifest(self, phase_name: str) -> RunManifest:
        manifest = run_manifest(self._store, phase_name, self._task.upstream[phase_name])
        if manifest is None:
            raise LookupError(f"upstream {phase_name} run {self._task.upstream[phase_name]} is not done")
        return manifest

    def read_upstream(self, phase_name: str, file_name: str) -> bytes:
        if self._declared is not None and not self._declared.may_read(phase_name, file_name):
            raise UndeclaredAccess(f"phase {self._declared.name} reads {phase_name}/{file_name}, which its row of "
                                   "the phase table does not declare (pipeline/phases.py: reads)")
        entry = next((f for f in self.upstream_manifest(phase_name).files if f.name == file_name), None)
        if entry is None:
            raise LookupError(f"upstream {phase_name} run has no file {file_name!r}")
        return self._store.get(entry.key)

    def write(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> FileEntry:
        if not name or name.startswith("_") or ".." in name.split("/"):
            raise ValueError(f"output name {name!r} is reserved or unsafe")
        if self._declared is not None and not self._declared.may_write(name):
            raise UndeclaredAccess(f"phase {self._declared.name} writes {name}, which its row of the phase table "
                                   "does not list (pipeline/phases.py: writes)")
        key = self._task.prefix + name
        self._store.put(key, data, content_type=content_type)
        entry = FileEntry(
            name=name, key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest(), content_type=content_type
        )
        self.written = [f for f in self.written if f.name != name] + [entry]
        return entry


PhaseFn = Callable[[PhaseTask, PhaseIO], PhaseResult]


JobBackends = Callable[[str | None], tuple[str, dict[str, str | None]]]


class PhaseRegistry:
    """The phase table this build runs and an implementation per phase. A phase without one says why, plainly."""

    def __init__(self, implementations: Mapping[str, PhaseFn], missing: Mapping[str, str] | None = None,
                 warm_up: Callable[[str | None], None] | None = None, job_backends: JobBackends | None = None,
                 table: PhaseTable = PHASES):
        unknown = set(implementations) - set(table.names)
        if unknown:
            raise ValueError(f"implementations for phases the table does not have: {sorted(unknown)}")
        self.table = table
        self._implementations = dict(implementations)
        self._missing = dict(missing or {})
        self._warm_up = warm_up
        self._job_backends = job_backends

    def job_backends(self, requested: str | None) -> tuple[str | None, dict[str, str | None]]:
        """The profile a job runs under and its protocol -> backend plan, given the profile job.json asks for
        (None: the deployment's). Raises ValueError (`ProfileError`) when the deployment does not allow it. A
        registry without backends (test phases) runs whatever is asked, with no plan."""
        if self._job_backends is None:
            return requested, {}
        return self._job_backends(requested)

    def warm_up(self, phase_name: str | None = None) -> None:
        """Build the model backends of one phase (a Modal container's), or of every phase (None), now rather than
        on the first job; a no-op for test phases."""
        if phase_name is not None and phase_name not in self.table:
            raise KeyError(f"unknown phase {phase_name!r}; phases are {', '.join(self.table.names)}")
        if self._warm_up is not None:
            self._warm_up(phase_name)

    def get(self, phase_name: str) -> PhaseFn:
        fn = self._implementations.get(phase_name)
        if fn is None:
            reason = self._missing.get(phase_name, "no implementation is registered in this build")
            raise PhaseUnavailable(phase_name, reason)
        return fn

    def available(self, phase_name: str) -> bool:
        return phase_name in self._implementations

    def missing(self) -> dict[str, str]:
        """The table's phases this registry cannot run, with why."""
        return {p.name: self._missing.get(p.name, "no implementation is registered in this build")
                for p in self.table if p.name not in self._implementations}
