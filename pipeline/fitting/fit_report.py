"""Physics-to-prompt (P2P) fit analysis: body measurements against the garment's size chart, per region.

The chart gives the BODY measurements each size is made for (`SizeChart.measures == "body"`, as on retail
charts), so the garment's own girth is the size's body value plus the garment's design ease, assumed per
category (a regular-fit cut; the photo cannot tell slim from oversized):

    garment_cm = chart_cm + DESIGN_EASE[category][region]
    ease_cm    = garment_cm - body_cm

Fabric (in this order):

- Bulk: the inside of a fabric shell of thickness t sits half a thickness inside its mid-surface, which
  takes pi * t of circumference: `bulk_cm = pi * thickness_mm / 10` (0.6 mm jersey: 0.19 cm; 5 mm wool: 1.6).
- Stretch: a stretchy fabric absorbs negative ease up to `STRETCH_K * stretch * body_cm`, K = 0.10 (a fully
  stretchy knit, stretch 1, gives 10 % of the body's girth before it strains; jersey at 0.30 gives 3 %).
  Absorbed ease is worn skin-tight, so it counts as zero: stretch never makes a garment look looser.

    e = ease_cm - bulk_cm
    effective_ease_cm = e                                        if e >= 0
                      = min(0, e + STRETCH_K * stretch * body_cm) if e < 0

Labels read off the effective ease, cm (too small below 0 everywhere: the garment is smaller than the body
after all the stretch the fabric has):

| category | region | design ease | tight     | regular    | loose  |
|----------|--------|-------------|-----------|------------|--------|
| upper    | chest  | 10          | [0, 4)    | [4, 16)    | >= 16  |
| upper    | waist  | 14          | [0, 4)    | [4, 24)    | >= 24  |
| lower    | waist  | 2           | [0, 1)    | [1, 6)     | >= 6   |
| lower    | hip    | 6           | [0, 2)    | [2, 12)    | >= 12  |
| full     | chest  | 8           | [0, 3)    | [3, 14)    | >= 14  |
| full     | waist  | 8           | [0, 3)    | [3, 16)    | >= 16  |
| full     | hip    | 10          | [0, 4)    | [4, 18)    | >= 18  |

Recommended size: among the chart rows that give the most of the category's regions, the one with the fewest
"too small" regions, then the smallest sum over regions of |effective ease - design ease| (closest to the
regular fit the garment was cut for); ties go to the larger size (the later row: charts list small to large).

Size evaluated: the garment's own size when it is a chart row (case-insensitive), else the recommended one
(and a note says so). Overall label: the most constraining region wins (too small > tight > loose > regular).

Confidence per region: the body measurement's confidence times a factor per default the region leans on:
the size chart (x 0.6, a generic chart, not the garment's), fabric stretch (x 0.85), fabric thickness (x 0.95).
The notes word each default used, and name the regions whose body measurement the photo did not show (a photo
cut at the chest: waist and hip follow the body model's proportions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from pipeline.body.measure import HIPS_UNSEEN, Measurements
from pipeline.errors import InvalidInput
from pipeline.fitting.contracts import FitLabel, FitReport, Region, RegionFit, SizeSource
from pipeline.spec import Category, SizeRow
from pipeline.wardrobe.contracts import Fabric, GarmentAnalysis, SizeChart

STRETCH_K = 0.10  # share of the body's girth a fully stretchy fabric (stretch 1) absorbs as negative ease


class Band(NamedTuple):
    """A region's design ease and the effective ease (cm) where tight turns regular and regular turns loose."""

    design: float
    regular_from: float
    loose_from: float


BANDS: dict[Category, dict[Region, Band]] = {
    "upper": {"chest": Band(10, 4, 16), "waist": Band(14, 4, 24)},
    "lower": {"waist": Band(2, 1, 6), "hip": Band(6, 2, 12)},
    "full": {"chest": Band(8, 3, 14), "waist": Band(8, 3, 16), "hip": Band(10, 4, 18)},
}
CHART_DEFAULT, STRETCH_DEFAULT, THICKNESS_DEFAULT = "size_chart", "fabric.stretch", "fabric.thickness"
DEFAULT_FACTORS = {CHART_DEFAULT: 0.6, STRETCH_DEFAULT: 0.85, THICKNESS_DEFAULT: 0.95}
SEVERITY: tuple[FitLabel, ...] = ("regular", "loose", "tight", "too small")  # overall: the last present wins
CUES: dict[Region, dict[FitLabel, str]] = {
    "chest": {"too small": "straining at the chest", "tight": "snug across the chest",
              "regular": "natural fit across the chest", "loose": "loose, relaxed chest"},
    "waist": {"too small": "straining at the waist", "tight": "snug at the waist",
              "regular": "natural fit at the waist", "loose": "relaxed waist"},
    "hip": {"too small": "straining across the hips", "tight": "snug over the hips",
            "regular": "natural fit over the hips", "loose": "loose through the hips"},
}  # fmt: skip
OVERALL_CUES: dict[FitLabel, str] = {
    "too small": "garment visibly too small, fabric pulling",
    "tight": "close-fitting silhouette",
    "regular": "true-to-size fit",
    "loose": "relaxed, roomy silhouette",
}


def bulk_cm(thickness_mm: float) -> float:
    """Circumference the fabric's own thickness takes from the inside: pi * t (t in cm)."""
    return math.pi * thickness_mm / 10.0


def effective_ease(ease_cm: float, body_cm: float, stretch: float, thickness_mm: float) -> float:
    """The ease the body feels: minus the fabric's bulk; negative ease absorbed by stretch counts as zero."""
    e = ease_cm - bulk_cm(thickness_mm)
    if e >= 0:
        return e
    return min(0.0, e + STRETCH_K * stretch * body_cm)


def label_for(band: Band, effective_ease_cm: float) -> FitLabel:
    """The table in the module docstring (rounded to 1e-6 cm so float noise cannot cross a boundary)."""
    e = round(effective_ease_cm, 6)
    if e < 0:
        return "too small"
    if e < band.regular_from:
        return "tight"
    return "regular" if e < band.loose_from else "loose"


def chart_value(row: SizeRow, region: Region) -> float | None:
    return {"chest": row.chest_cm, "waist": row.waist_cm, "hip": row.hip_cm}[region]


def region_fit(category: Category, region: Region, chart_cm: float, body: Measurements, fabric: Fabric,
               factor: float) -> RegionFit:
    """One region of one size: ease, effective ease, label, confidence (body confidence x defaults factor)."""
    band = BANDS[category][region]
    measured = getattr(body, region)
    garment = chart_cm + band.design
    ease = garment - measured.value_cm
    eff = effective_ease(ease, measured.value_cm, fabric.stretch, fabric.thickness_mm)
    return RegionFit(region=region, body_cm=round(measured.value_cm, 2), garment_cm=round(garment, 2),
                     ease_cm=round(ease, 2), effective_ease_cm=round(eff, 2), label=label_for(band, eff),
                     confidence=round(measured.confidence * factor, 3))


def evaluate_row(category: Category, row: SizeRow, body: Measurements, fabric: Fabric,
                 factor: float = 1.0) -> tuple[RegionFit, ...]:
    """The category's regions this row gives a value for, in the order of `BANDS`."""
    return tuple(region_fit(category, region, value, body, fabric, factor)
                 for region in BANDS[category] if (value := chart_value(row, region)) is not None)


def distance_from_regular(category: Category, fits: Sequence[RegionFit]) -> float:
    """Sum over regions of |effective ease - design ease|: 0 is the fit the garment was cut for."""
    return sum(abs(f.effective_ease_cm - BANDS[category][f.region].design) for f in fits)


def recommend(category: Category, rows: Sequence[SizeRow], body: Measurements, fabric: Fabric) -> SizeRow:
    """The module docstring's rule: most regions covered, fewest too small, closest to regular, ties larger.

    Raises InvalidInput when no row gives any of the category's regions.
    """
    scored = [(i, row, evaluate_row(category, row, body, fabric)) for i, row in enumerate(rows)]
    most = max((len(fits) for _, _, fits in scored), default=0)
    if most == 0:
        regions = ", ".join(BANDS[category])
        raise InvalidInput(f"the size chart gives none of a {category} garment's measurements ({regions})",
                           f"give the size chart's {regions} columns in job.json's garment.size_chart")
    candidates = [s for s in scored if len(s[2]) == most]
    best = min(candidates, key=lambda s: (sum(f.label == "too small" for f in s[2]),
                                          round(distance_from_regular(category, s[2]), 6), -s[0]))
    return best[1]


def overall_label(fits: Sequence[RegionFit]) -> FitLabel:
    """The most constraining region's label (too small > tight > loose > regular)."""
    return max((f.label for f in fits), key=SEVERITY.index, default="regular")


def prompt_cues(fits: Sequence[RegionFit], overall: FitLabel) -> tuple[str, ...]:
    """One short phrase per region, then one overall cue."""
    return (*(CUES[f.region][f.label] for f in fits), OVERALL_CUES[overall])


def relevant_defaults(defaults_used: Sequence[str]) -> tuple[str, ...]:
    """The garment's defaults this report leans on (chart, stretch, thickness), in the garment's order."""
    return tuple(d for d in defaults_used if d in DEFAULT_FACTORS)


def confidence_factor(defaults: Sequence[str]) -> float:
    return math.prod(DEFAULT_FACTORS[d] for d in defaults)


def find_row(rows: Sequence[SizeRow], label: str | None) -> SizeRow | None:
    """The chart row with this label (case- and space-insensitive), or None."""
    if label is None:
        return None
    return next((r for r in rows if r.label.strip().lower() == label.strip().lower()), None)


def choose_size(chart: SizeChart, recommended: SizeRow, notes: list[str]) -> tuple[SizeRow, SizeSource]:
    """The garment's own size when the chart has it, else the recommended size (with a note why)."""
    own = find_row(chart.rows, chart.size)
    if own is not None:
        return own, "job.json"
    if chart.size is None:
        notes.append(f"the garment's size is unknown: the report evaluates the recommended size {recommended.label}")
    else:
        notes.append(f"the garment's size {chart.size!r} is not in the size chart: the report evaluates the "
                     f"recommended size {recommended.label}")
    return recommended, "recommended"


def default_notes(category: Category, defaults: Sequence[str], fabric: Fabric) -> list[str]:
    """Say which guesses the verdict rests on."""
    notes = []
    if CHART_DEFAULT in defaults:
        notes.append("size chart: a generic default chart, not the garment's own; sizes may run differently")
    if STRETCH_DEFAULT in defaults:
        notes.append(f"fabric stretch: the default for {category} garments ({fabric.stretch:.2f})")
    if THICKNESS_DEFAULT in defaults:
        notes.append(f"fabric thickness: the default for {category} garments ({fabric.thickness_mm:g} mm)")
    return notes


def assumed_body_notes(body: Measurements, regions: Sequence[Region]) -> list[str]:
    """A note naming the judged regions whose body measurement the photo did not show (cut at the chest)."""
    assumed = [r for r in regions if HIPS_UNSEEN in getattr(body, r).basis]
    return [f"{' and '.join(assumed)}: {HIPS_UNSEEN} (the photo is cut above them)"] if assumed else []


def fit_report(body: Measurements, garment: GarmentAnalysis) -> FitReport:
    """The P2P fit report of this body in this garment (see the module docstring for every rule)."""
    category, chart, fabric = garment.category.value, garment.size_chart, garment.fabric
    defaults = relevant_defaults(garment.defaults_used)
    notes = default_notes(category, defaults, fabric)
    recommended = recommend(category, chart.rows, body, fabric)
    row, source = choose_size(chart, recommended, notes)
    fits = evaluate_row(category, row, body, fabric, confidence_factor(defaults))
    missing = [r for r in BANDS[category] if r not in {f.region for f in fits}]
    if missing:
        notes.append(f"size {row.label} gives no {', '.join(missing)} value: not judged")
    if any(r.length_cm is not None for r in chart.rows):
        notes.append("the chart gives lengths: length is not judged (girths only)")
    notes += assumed_body_notes(body, [f.region for f in fits])
    overall = overall_label(fits)
    return FitReport(category=category, size_evaluated=row.label, size_source=source,
                     recommended_size=recommended.label, regions=fits, overall_label=overall,
                     prompt_cues=prompt_cues(fits, overall), notes=tuple(notes), defaults_used=defaults)
