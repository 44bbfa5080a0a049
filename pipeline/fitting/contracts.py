"""`fit_report.json`: the physics-to-prompt (P2P) fit analysis. A strict contract (frozen, no extra fields,
versioned) that the dressing step and the generative backends read.

All lengths are circumferences in cm. `ease_cm` = garment - body; `effective_ease_cm` is the ease after the
fabric's bulk and stretch (see `pipeline.fitting.fit_report` for the rules and tables).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.spec import Category

SCHEMA_VERSION: Literal[1] = 1
FitLabel = Literal["too small", "tight", "regular", "loose"]
Region = Literal["chest", "waist", "hip"]
SizeSource = Literal["job.json", "recommended"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RegionFit(_Strict):
    region: Region
    body_cm: float = Field(description="the body's girth at this region")
    garment_cm: float = Field(description="the garment's girth: the size's chart (body) value + design ease")
    ease_cm: float = Field(description="garment_cm - body_cm")
    effective_ease_cm: float = Field(description="ease after fabric bulk and stretch; the label is read off it")
    label: FitLabel
    confidence: float = Field(ge=0, le=1)


class FitReport(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    category: Category
    size_evaluated: str = Field(description="the chart row the regions describe")
    size_source: SizeSource = Field(description="job.json: the garment's own size; recommended: it was unknown")
    recommended_size: str
    regions: tuple[RegionFit, ...]
    overall_label: FitLabel
    prompt_cues: tuple[str, ...] = Field(description="short phrases for generative backends, overall cue last")
    notes: tuple[str, ...] = ()
    defaults_used: tuple[str, ...] = Field(description="garment fields behind this report that were defaults")
