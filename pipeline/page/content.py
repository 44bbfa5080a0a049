"""What a result page and a batch grid show, as typed records read from the published files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from pipeline.cost import JobCost
from pipeline.fitting.contracts import FitReport
from pipeline.manifests import BatchReport, PhaseSummary

PHASE_ORDER = ("wardrobe", "avatar", "fitting", "viewer3d")


class AngleScore(BaseModel):
    """One angle's identity check (fitting.json `identity`): the face distance to the person photo's."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    angle: str
    distance: float | None = None
    status: str


class FittingRecord(BaseModel):
    """The part of fitting.json the page shows; tolerant, since the page only reads it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    identity: tuple[AngleScore, ...] = ()
    quality_flags: tuple[str, ...] = ()
    garment_coverage: float | None = None
    dressing: dict[str, Any] = {}

    def score(self, angle: str) -> AngleScore | None:
        return next((s for s in self.identity if s.angle == angle), None)


@dataclass(frozen=True)
class PhaseRow:
    name: str
    duration_s: float
    attempt: int
    backends: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Viewer:
    """The 3D viewer's part of the page: the model, the script, the embedded copy for file://, or why none."""

    glb: str | None  # relative path of the GLB (served pages load it directly)
    script: str | None  # relative path of the vendored model-viewer bundle
    embedded: str | None  # relative path of the GLB as a script (pages opened from a folder)
    missing: str | None  # why there is no 3D view; None when there is one
    not_embedded: str | None = None  # why a page opened from a folder cannot show it (a GLB too large)


@dataclass(frozen=True)
class ResultPage:
    job_id: str
    batch_id: str | None
    photo: str | None  # the person wearing the garment (photo.png), shown first
    angles: tuple[str, ...]  # "000" .. "315": angles/{angle}.png
    turntable: str | None  # the animated WebP
    viewer: Viewer
    report: FitReport | None
    fitting: FittingRecord | None
    inputs: tuple[tuple[str, str], ...]  # (role, relative path of its thumbnail)
    phases: tuple[PhaseRow, ...]
    downloads: tuple[tuple[str, str], ...]  # (label, relative path)
    cost: JobCost | None = None  # this job's share of its runs' usage, priced (pipeline/cost.py)

    @property
    def total_s(self) -> float:
        return sum(p.duration_s for p in self.phases)


def phase_rows(phases: dict[str, PhaseSummary]) -> tuple[PhaseRow, ...]:
    """The phases in pipeline order (any others after, by name)."""
    names = sorted(phases, key=lambda n: (PHASE_ORDER.index(n) if n in PHASE_ORDER else len(PHASE_ORDER), n))
    return tuple(PhaseRow(n, phases[n].duration_s, phases[n].attempt, tuple(sorted(phases[n].backends.items())))
                 for n in names)


@dataclass(frozen=True)
class GridCell:
    job_id: str
    status: str
    href: str | None  # the pair's page, relative to the grid
    front: str | None  # the pair's front view, relative to the grid
    caption: str | None = None  # the fit verdict, for a pair that succeeded
    phase: str | None = None
    error: str | None = None
    user_action: str | None = None


@dataclass(frozen=True)
class BatchGrid:
    batch_id: str
    people: tuple[str, ...]  # rows
    garments: tuple[str, ...]  # columns
    cells: dict[tuple[str, str], GridCell]  # (person, garment) -> cell
    report: BatchReport

    def cell(self, person: str, garment: str) -> GridCell | None:
        return self.cells.get((person, garment))
