"""Job and batch plans: the content-keyed runs a job needs, derived from its inputs alone.

A run's key is a hash of the identities of what it reads (input bytes' sha256, the spec part it uses,
its upstream runs' keys) and the phase's version. Same inputs -> same keys -> no new work; a changed
garment changes the wardrobe key and everything downstream of it, and nothing else.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict

from pipeline import layout
from pipeline.phases import PHASES, Phase, PhaseTable
from pipeline.spec import JobSpec


class InputRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    etag: str
    size: int
    sha256: str


class RunRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    phase: str
    key: str
    needs: dict[str, str]  # need -> identity (an input's sha256, or an upstream run's key)


class PlanError(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    phase: Literal["intake"] = "intake"
    reason: str
    user_action: str


class JobPlan(BaseModel):
    """work/jobs/{job_id}/plan.json. `error` is set (and `runs` empty) when intake refused the inputs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    job_id: str
    batch_id: str | None = None
    inputs: dict[str, InputRef]  # "person", "garment"; "size_chart" and "spec" (job.json) when uploaded
    spec: JobSpec = JobSpec()
    profile: str | None = None  # the backend profile it runs under: the deployment's, or narrower (job.json)
    backends: dict[str, str | None] = {}  # protocol -> backend key under that profile (joins each run's key)
    runs: dict[str, RunRef] = {}
    plan_hash: str
    error: PlanError | None = None

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()

    def run(self, phase_name: str) -> RunRef:
        return self.runs[phase_name]

    def phase_needs(self, phase_name: str) -> list[str]:
        """The phases whose runs this phase's run reads (the plan alone says so: no table needed)."""
        return [n for n in self.runs[phase_name].needs if n in self.runs]


def _spec_part(spec: JobSpec, phase: Phase, backends: dict[str, str | None]) -> str:
    part: BaseModel | None = {"person": spec.person, "garment": spec.garment, "none": None}[phase.spec]
    payload = {"part": part.model_dump(mode="json") if part is not None else None,
               "backends": {p: backends[p] for p in phase.protocols if p in backends}}
    return json.dumps(payload, sort_keys=True)


def plan_runs(inputs: dict[str, InputRef], spec: JobSpec, backends: dict[str, str | None] | None = None,
              table: PhaseTable = PHASES) -> dict[str, RunRef]:
    """One run per phase of the table, in its order (which the router and publishing follow)."""
    runs: dict[str, RunRef] = {}
    for phase in table:
        needs = {n: inputs[n].sha256 for n in phase.inputs}
        needs.update({n: ref.sha256 for n, ref in inputs.items() if phase.uses_optional(n)})
        needs.update({n: runs[n].key for n in phase.phase_needs})
        identity = [phase.name, phase.version, _spec_part(spec, phase, backends or {})]
        identity += [f"{n}={v}" for n, v in sorted(needs.items())]
        runs[phase.name] = RunRef(phase=phase.name, key=layout.content_key(*identity), needs=needs)
    return runs


def _plan_hash(job_id: str, inputs: dict[str, InputRef], spec: JobSpec, runs: dict[str, RunRef]) -> str:
    parts = [job_id, spec.model_dump_json()]
    parts += [f"{n}={i.sha256}" for n, i in sorted(inputs.items())]
    parts += [f"{n}={r.key}" for n, r in sorted(runs.items())]
    return layout.content_key(*parts)


def build_plan(
    job_id: str, inputs: dict[str, InputRef], spec: JobSpec, *, batch_id: str | None = None,
    profile: str | None = None, backends: dict[str, str | None] | None = None, table: PhaseTable = PHASES,
) -> JobPlan:
    """`profile` and `backends` (protocol -> backend key) are what the job runs under; each phase's run key
    takes the backends of the protocols the phase table says it uses."""
    runs = plan_runs(inputs, spec, backends, table)
    return JobPlan(
        job_id=job_id,
        batch_id=batch_id,
        inputs=inputs,
        spec=spec,
        profile=profile,
        backends=dict(backends or {}),
        runs=runs,
        plan_hash=_plan_hash(job_id, inputs, spec, runs),
    )


def refused_plan(
    job_id: str, inputs: dict[str, InputRef], reason: str, user_action: str, *, batch_id: str | None = None
) -> JobPlan:
    return JobPlan(
        job_id=job_id,
        batch_id=batch_id,
        inputs=inputs,
        plan_hash=layout.content_key(job_id, "refused", reason, *(i.etag for i in inputs.values())),
        error=PlanError(reason=reason, user_action=user_action),
    )


class BatchPair(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    person: str  # catalog file name
    garment: str


class BatchPlan(BaseModel):
    """work/batches/{batch_id}/plan.json: the batch's jobs, one per (person, garment) pair."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    batch_id: str
    marker_etag: str
    jobs: tuple[BatchPair, ...]
    plan_hash: str
    error: str | None = None  # batch.json itself was unusable: no jobs, the report says why

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()


def _suffixed(job_id: str, digest: str) -> str:
    return f"{job_id[: layout.MAX_ID_LENGTH - 10]}--{digest[:8]}"


def refused_batch_plan(batch_id: str, marker_etag: str, error: str) -> BatchPlan:
    return BatchPlan(batch_id=batch_id, marker_etag=marker_etag, jobs=(),
                     plan_hash=layout.content_key(batch_id, marker_etag), error=error)


def build_batch_plan(batch_id: str, marker_etag: str, people: list[str], garments: list[str]) -> BatchPlan:
    pairs = tuple(
        BatchPair(job_id=layout.catalog_job_id(batch_id, p, g), person=p, garment=g)
        for p in sorted(people)
        for g in sorted(garments)
    )
    ids = [pair.job_id for pair in pairs]
    if len(set(ids)) != len(ids):  # two files differing only by characters the slug drops
        pairs = tuple(
            pair.model_copy(update={"job_id": _suffixed(pair.job_id, layout.content_key(pair.person, pair.garment))})
            for pair in pairs
        )
    return BatchPlan(
        batch_id=batch_id,
        marker_etag=marker_etag,
        jobs=pairs,
        plan_hash=layout.content_key(batch_id, marker_etag, *(p.job_id for p in pairs)),
    )
