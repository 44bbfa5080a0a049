"""The phase table: each phase's name, what it needs and what it writes. One router reads it.

A phase never names the phase after it. A need is either a job input ("person", "garment") or the name
of an earlier phase, whose finished run the phase reads. An optional input (the wardrobe's "size_chart"
image) joins the run's needs, and so its content key, only when the user uploaded it.

The `spec` field says which part of job.json changes the phase's output, so that part joins the run's
content key (a changed size chart re-runs the wardrobe and what follows, never the avatar). `backends` names
the protocols (pipeline.backends.protocols) whose backend changes the output: the backend the job's profile
plans for each joins the key too (a deployment moved from cpu to gpu re-runs the jobs dropped again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

InputName = Literal["person", "garment", "size_chart"]
INPUT_NAMES: tuple[str, ...] = ("person", "garment", "size_chart")
SpecPart = Literal["person", "garment", "none"]


@dataclass(frozen=True)
class Phase:
    name: str
    needs: tuple[str, ...]
    spec: SpecPart
    writes: str
    version: str  # bump when the phase's output for the same inputs changes: old runs are not reused
    optional: tuple[str, ...] = ()  # inputs used when present, never waited for; "name*" matches a prefix
    backends: tuple[str, ...] = ()  # the protocols whose backend changes its output (their choice joins the key)

    def uses_optional(self, input_name: str) -> bool:
        return any(input_name == o or (o.endswith("*") and input_name.startswith(o[:-1])) for o in self.optional)

    @property
    def input_needs(self) -> tuple[str, ...]:
        return tuple(n for n in self.needs if n in INPUT_NAMES)

    @property
    def phase_needs(self) -> tuple[str, ...]:
        return tuple(n for n in self.needs if n not in INPUT_NAMES)


PHASES: tuple[Phase, ...] = (
    Phase(
        name="avatar",
        needs=("person",),
        spec="person",
        writes="body landmarks, person mask, face bank, fitted 3D body (GLB), camera, measurements, photo",
        version="2",
        optional=("face_ref_*",),  # catalog: other photos of the same person, for the face bank
        backends=("PersonLandmarker", "PersonDetector", "PromptSegmenter", "FaceEmbedder", "BodyFitter"),
    ),
    Phase(
        name="wardrobe",
        needs=("garment",),
        spec="garment",
        writes="garment mask, category, colours, texture crop, size chart and fabric",
        version="1",
        optional=("size_chart",),
        backends=("GarmentSegmenter", "PromptSegmenter", "VisionLLM"),
    ),
    Phase(
        name="fitting",
        needs=("avatar", "wardrobe"),
        spec="none",
        writes="fit report, dressed body, 8 angle renders, identity scores, quality flags",
        version="1",
        backends=("FaceEmbedder", "TryOnPainter", "QualityJudge"),
    ),
    Phase(
        name="viewer3d",
        needs=("fitting",),
        spec="none",
        writes="textured GLB, the 8 angles, contact sheet: the files a job publishes",
        version="1",
        backends=("MeshBuilder",),
    ),
)

PHASE_BY_NAME: dict[str, Phase] = {p.name: p for p in PHASES}
FINAL_PHASE = PHASES[-1].name


def phase(name: str) -> Phase:
    try:
        return PHASE_BY_NAME[name]
    except KeyError as exc:
        raise KeyError(f"unknown phase {name!r}; phases are {', '.join(PHASE_BY_NAME)}") from exc


def _check_table() -> None:
    seen: set[str] = set()
    for p in PHASES:
        for need in p.phase_needs:
            if need not in seen:
                raise ValueError(f"phase {p.name} needs {need}, which is not an earlier phase")
        seen.add(p.name)


_check_table()
