"""The phase table: the one declaration of each phase. Everything else about phases is derived from it.

A row says what the phase is and touches: its function (`run`), the job inputs it needs, the upstream outputs
it reads (`"phase/file"`, so the phases it needs follow), the files it writes, which of them it publishes under
`results/{job_id}/`, its model backends by role (role -> protocol of `pipeline.backends.protocols`), the part of
job.json that changes its output, and its version. From the table come: the job's runs and their content keys
(`pipeline.plan`), the product's phase functions bound to their backends (`pipeline.registry`), the checks on
every read and write (`PhaseIO`), per-phase publishing (`functions.steps.run_publish`), the status tables, the
Modal classes each phase runs in (a GPU one where a backend its profile plans for it needs a GPU) and the models
each container loads (only its phase's). A phase never names the phase after it.

A phase function has the fixed shape `(task, io, backends) -> PhaseResult`; `backends` is a frozen dataclass
of the phase's module whose fields are the row's roles (a test holds the two equal).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

INPUT_NAMES: tuple[str, ...] = ("person", "garment", "size_chart")
SpecPart = Literal["person", "garment", "none"]
STEP_NAMES = frozenset({"intake", "batch", "publish", "fail", "report"})  # the orchestration steps
NOT_PHASE_NAMES = STEP_NAMES | {"jobs", "batches", "outbox", "api"}  # folders under work/ that are not phase runs


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


@dataclass(frozen=True)
class Phase:
    name: str
    run: str  # "module:function" of the phase function; "" only for test tables whose registry brings its own
    inputs: tuple[str, ...] = ()  # job inputs it needs (from INPUT_NAMES), waited for
    reads: tuple[str, ...] = ()  # upstream outputs it reads, "phase/file" ("*" matches, e.g. "fitting/angles/*")
    writes: tuple[str, ...] = ()  # the files it writes ("*" matches, e.g. "angles/*.png")
    publishes: tuple[str, ...] = ()  # which of its files are copied under results/{job_id}/ (patterns of `writes`)
    backends: Mapping[str, str] = field(default_factory=dict)  # role -> protocol; the backends' choice joins its key
    spec: SpecPart = "none"  # the part of job.json that changes its output (joins its key)
    version: str = "1"  # bump when the output for the same inputs changes: old runs are not reused
    optional: tuple[str, ...] = ()  # inputs used when present, never waited for; "name*" matches a prefix

    def __post_init__(self) -> None:
        object.__setattr__(self, "backends", MappingProxyType(dict(self.backends)))

    def uses_optional(self, input_name: str) -> bool:
        return any(input_name == o or (o.endswith("*") and input_name.startswith(o[:-1])) for o in self.optional)

    @property
    def phase_needs(self) -> tuple[str, ...]:
        """The earlier phases it reads from, in the order of `reads`."""
        return tuple(dict.fromkeys(r.split("/", 1)[0] for r in self.reads))

    @property
    def needs(self) -> tuple[str, ...]:
        return self.inputs + self.phase_needs

    @property
    def protocols(self) -> tuple[str, ...]:
        """The protocols its backends serve, sorted: the plan's backend for each joins the run key."""
        return tuple(sorted(set(self.backends.values())))

    def may_read(self, phase_name: str, file_name: str) -> bool:
        return _matches(f"{phase_name}/{file_name}", self.reads)

    def may_write(self, file_name: str) -> bool:
        return _matches(file_name, self.writes)

    def published(self, file_name: str) -> bool:
        return _matches(file_name, self.publishes)


class PhaseTable:
    """The phases in order (a phase comes after every phase it reads from), checked when built: a duplicate
    or reserved name, a read of a phase that is not earlier or of a file it does not write, a published file it
    does not write, or two phases publishing the same files are errors at start, never surprises later."""

    def __init__(self, phases: Iterable[Phase]) -> None:
        self.phases: tuple[Phase, ...] = tuple(phases)
        self.by_name: dict[str, Phase] = {}
        for p in self.phases:
            self._check(p)
            self.by_name[p.name] = p

    def _check(self, p: Phase) -> None:
        if p.name in self.by_name or p.name in NOT_PHASE_NAMES or p.name in INPUT_NAMES or not p.name.isidentifier():
            raise ValueError(f"phase name {p.name!r} is taken, reserved or not an identifier")
        unknown = [i for i in p.inputs if i not in INPUT_NAMES]
        if unknown:
            raise ValueError(f"phase {p.name} needs unknown inputs {unknown}; inputs are {INPUT_NAMES}")
        for read in p.reads:
            source, _, file_pattern = read.partition("/")
            upstream = self.by_name.get(source)
            if upstream is None:
                raise ValueError(f"phase {p.name} reads {read!r}, but {source} is not an earlier phase")
            if not file_pattern or not any(fnmatch.fnmatchcase(file_pattern, w) or
                                           fnmatch.fnmatchcase(w, file_pattern) for w in upstream.writes):
                raise ValueError(f"phase {p.name} reads {read!r}, which {source} does not write")
        for pattern in p.publishes:
            if not any(fnmatch.fnmatchcase(pattern, w) for w in p.writes):
                raise ValueError(f"phase {p.name} publishes {pattern!r}, which it does not write")
            for other in self.phases:
                if other is not p and pattern in other.publishes:
                    raise ValueError(f"phases {other.name} and {p.name} both publish {pattern!r}")

    def __iter__(self) -> Iterator[Phase]:
        return iter(self.phases)

    def __len__(self) -> int:
        return len(self.phases)

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def __getitem__(self, name: str) -> Phase:
        try:
            return self.by_name[name]
        except KeyError as exc:
            raise KeyError(f"unknown phase {name!r}; phases are {', '.join(self.by_name)}") from exc

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.by_name)

    def markdown(self) -> str:
        """The table as docs/architecture.md shows it (a test keeps the two identical)."""
        lines = ["| phase | function | needs | reads | writes | publishes | backends (role: protocol) |",
                 "|---|---|---|---|---|---|---|"]
        for p in self.phases:
            cells = [f"`{p.name}`", f"`{p.run}`", ", ".join(p.needs), ", ".join(p.reads) or "-",
                     ", ".join(p.writes), ", ".join(p.publishes) or "-",
                     ", ".join(f"{role}: {protocol}" for role, protocol in p.backends.items()) or "-"]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def with_phase(self, phase: Phase) -> PhaseTable:
        """This table and one more phase at its end (a deployment's or a test's extension)."""
        return PhaseTable((*self.phases, phase))


AVATAR_FILES = ("body.glb", "body.npz", "camera.json", "keypoints.json", "mask.png", "upright.png", "face_bank.json",
                "measurements.json", "overlay.png", "avatar.json")

PHASES = PhaseTable((
    Phase(
        name="avatar", run="pipeline.avatar.phase:build_avatar",
        inputs=("person",), optional=("face_ref_*",),  # catalog: other photos of the same person, for the face bank
        writes=AVATAR_FILES,
        backends={"landmarker": "PersonLandmarker", "faces": "FaceEmbedder", "body": "BodyFitter"},
        spec="person", version="3",
    ),
    Phase(
        name="wardrobe", run="pipeline.wardrobe.phase:analyse_garment",
        inputs=("garment",), optional=("size_chart",),
        writes=("garment.json", "mask.png", "cutout.png", "texture.png", "overlay.png"),
        backends={"segmenter": "GarmentSegmenter", "vision_llm": "VisionLLM"},
        spec="garment",
    ),
    Phase(
        name="fitting", run="pipeline.fitting.phase:fit_and_render",
        reads=("avatar/body.npz", "avatar/camera.json", "avatar/upright.png", "avatar/mask.png",
               "avatar/face_bank.json", "avatar/measurements.json",
               "wardrobe/garment.json", "wardrobe/cutout.png", "wardrobe/texture.png"),
        writes=("photo.png", "angles/*.png", "contact_sheet.jpg", "views.json", "atlas.png", "atlas_source.png",
                "dressed.npz", "fit_report.json", "fitting.json"),
        publishes=("photo.png", "angles/*.png", "contact_sheet.jpg", "fit_report.json", "fitting.json"),
        backends={"faces": "FaceEmbedder", "judge": "QualityJudge", "painter": "TryOnPainter",
                  "refiner": "ViewRefiner"}, version="3",
    ),
    Phase(
        name="viewer3d", run="pipeline.viewer3d.phase:build_viewer",
        reads=("fitting/dressed.npz", "fitting/atlas.png", "fitting/views.json", "fitting/angles/*.png"),
        writes=("model.glb",),
        publishes=("model.glb",),
        backends={"mesh_builder": "MeshBuilder"},
    ),
))
