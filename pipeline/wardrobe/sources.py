"""Where each fact about the garment comes from, in order of trust: the user's job.json, then the vision
LLM (when one is configured), then the image itself (category) or a documented default (size chart,
fabric). Each decision returns its value with its source; every default is listed, never hidden.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np
from pydantic import ValidationError

from pipeline.backends.protocols import FabricReading, SizeChartReading, VisionLLM, VisionLLMError
from pipeline.spec import Category, GarmentSpec, SizeRow
from pipeline.wardrobe import defaults
from pipeline.wardrobe.category import CategoryGuess
from pipeline.wardrobe.contracts import CategoryInfo, Fabric, SizeChart

LLM_MIN_CONFIDENCE = 0.5  # below this the LLM's category loses to the shape's
CATEGORIES: tuple[Category, ...] = ("upper", "lower", "full")
T = TypeVar("T")


@dataclass
class Findings:
    """What the vision LLM said (None where it was not asked or failed), and notes for garment.json."""

    fabric: FabricReading | None = None
    chart: SizeChartReading | None = None
    notes: list[str] = field(default_factory=list)


def _ask(what: str, call: Callable[[], T], notes: list[str]) -> T | None:
    """One LLM call; a non-transient failure becomes a note (RetryableError propagates: the run retries)."""
    try:
        return call()
    except VisionLLMError as exc:
        notes.append(f"the vision LLM could not {what} ({exc}); fell back to job.json or defaults")
        return None


def consult_llm(llm: VisionLLM | None, spec: GarmentSpec, garment: np.ndarray,
                chart_image: Callable[[], np.ndarray] | None) -> Findings:
    """Ask the LLM only what job.json leaves open. `chart_image` loads the uploaded chart, if there is one."""
    found = Findings()
    chart_open = not spec.size_chart
    if llm is None:
        if chart_image is not None and chart_open:
            found.notes.append("size_chart image uploaded but not read: no vision LLM is configured "
                               "(set a Gemini API key); the default size chart was used")
        return found
    if spec.category is None or spec.stretch is None or spec.thickness_mm is None:
        found.fabric = _ask("infer the fabric", lambda: llm.infer_fabric(garment), found.notes)
    if chart_image is not None and chart_open:
        found.chart = _ask("read the size chart", lambda: llm.read_size_chart(chart_image()), found.notes)
        found.notes.extend(found.chart.notes if found.chart else ())
    elif chart_image is not None:
        found.notes.append("size_chart image not read: job.json gives the size chart, which wins")
    return found


def decide_category(spec: GarmentSpec, guess: CategoryGuess, fabric: FabricReading | None,
                    notes: list[str]) -> CategoryInfo:
    shape = CategoryInfo(value=guess.category, confidence=guess.confidence, source="inferred",
                         inferred=guess.category, inferred_confidence=guess.confidence)
    info = shape
    if spec.category is not None:
        info = shape.model_copy(update={"value": spec.category, "confidence": 1.0, "source": "job.json"})
    elif fabric and fabric.category in CATEGORIES and fabric.category_confidence >= LLM_MIN_CONFIDENCE:
        info = shape.model_copy(update={"value": fabric.category, "source": "vision-llm",
                                        "confidence": round(fabric.category_confidence, 3)})
    if info.source != "inferred" and info.value != guess.category:
        notes.append(f"the garment's shape looks {guess.category} (confidence {guess.confidence:.2f}); "
                     f"{info.source} says {info.value}, which was used")
    return info


def chart_rows(reading: SizeChartReading, notes: list[str]) -> tuple[SizeRow, ...]:
    """The LLM's rows as validated SizeRows; implausible rows are dropped with a note."""
    rows = []
    for row in reading.rows:
        try:
            rows.append(SizeRow(label=row.label, chest_cm=row.chest_cm, waist_cm=row.waist_cm,
                                hip_cm=row.hip_cm, length_cm=row.length_cm))
        except ValidationError:
            notes.append(f"size chart row {row.label!r} from the vision LLM was implausible and dropped")
    return tuple(rows)


def decide_chart(spec: GarmentSpec, reading: SizeChartReading | None, used: list[str],
                 notes: list[str]) -> SizeChart:
    size_source: Literal["job.json", "unknown"] = "job.json" if spec.size else "unknown"
    if spec.size_chart:
        return SizeChart(rows=spec.size_chart, source="job.json", size=spec.size, size_source=size_source)
    rows = chart_rows(reading, notes) if reading else ()
    if rows:
        return SizeChart(rows=rows, source="vision-llm", size=spec.size, size_source=size_source)
    if reading is not None:
        notes.append("the vision LLM found no usable rows in the size chart image; the default chart was used")
    used.append("size_chart")
    return SizeChart(rows=defaults.SIZE_CHART, source="default", size=spec.size, size_source=size_source)


def decide_fabric(spec: GarmentSpec, category: Category, reading: FabricReading | None, used: list[str]) -> Fabric:
    fallback = defaults.FABRIC[category]

    def pick(given: float | None, read: float | None, default: float, name: str) -> tuple[float, str]:
        if given is not None:
            return given, "job.json"
        if read is not None:
            return read, "vision-llm"
        used.append(f"fabric.{name}")
        return default, "default"

    stretch, stretch_source = pick(spec.stretch, reading.stretch if reading else None, fallback.stretch, "stretch")
    thickness, thickness_source = pick(spec.thickness_mm, reading.thickness_mm if reading else None,
                                       fallback.thickness_mm, "thickness_mm")
    return Fabric(stretch=round(float(np.clip(stretch, 0, 1)), 3), stretch_source=stretch_source,  # type: ignore[arg-type]
                  thickness_mm=round(float(np.clip(thickness, 0.05, 50)), 2), thickness_source=thickness_source,  # type: ignore[arg-type]
                  material=reading.material if reading else None)
