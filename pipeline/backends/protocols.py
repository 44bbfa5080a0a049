"""What the model phases ask of their backends: one Protocol per job, plain numpy in and out.

Each protocol has a CPU default that runs offline from weights inside packages (mediapipe, dlib, anny,
classical image processing), a GPU implementation where one exists, and a small fake in tests.
Backends are built once per process (`pipeline.backends.planned.PlannedBackends`) and reused across jobs; nothing
here loads a model at import.

Conventions shared by every implementation:
- images are `uint8` RGB arrays of shape (H, W, 3); masks are `float32` arrays of shape (H, W) in [0, 1];
- pixel coordinates are (x, y) with the origin at the image's top-left corner, y down;
- the body's world frame and the camera are `pipeline.geometry`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from pipeline.geometry import BodyFit
from pipeline.spec import Category


class Backend(Protocol):
    # Read-only: adapters may serve them as plain attributes or as properties.
    @property
    def name(self) -> str: ...  # e.g. "mediapipe-pose"

    @property
    def version(self) -> str: ...  # the package / model version, recorded in each run's manifest


# ---- person: landmarks and mask ---------------------------------------------------------------------


@dataclass(frozen=True)
class PersonObservation:
    """One person found in a photo (the most prominent when there are several)."""

    image_size: tuple[int, int]  # (width, height) of the photo
    landmarks: np.ndarray  # (33, 3): x px, y px, visibility in [0, 1]; mediapipe pose order
    world: np.ndarray  # (33, 3): mediapipe world landmarks, metres, origin between the hips
    mask: np.ndarray  # (H, W) float32 person mask of the chosen person
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) of the chosen person
    people: int = 1  # how many people the photo holds
    notes: tuple[str, ...] = ()  # e.g. "2 people found; used the most prominent (the largest)"


@runtime_checkable
class PersonLandmarker(Backend, Protocol):
    def find_person(self, rgb: np.ndarray) -> PersonObservation | None:
        """The most prominent person, or None when the photo holds no person."""
        ...


# ---- face identity -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1)
    landmarks: np.ndarray  # (5, 2) px: the 5-point landmarks
    embedding: np.ndarray  # (D,) float32 identity embedding (D = 128 for dlib)
    score: float  # detector confidence


@runtime_checkable
class FaceEmbedder(Backend, Protocol):
    threshold: float  # same person when the L2 distance of two embeddings is below this

    def faces(self, rgb: np.ndarray) -> list[Face]:
        """Every face found, largest first; an empty list when there is none."""
        ...


# ---- the parametric body -----------------------------------------------------------------------------


@runtime_checkable
class BodyFitter(Backend, Protocol):
    def fit(self, person: PersonObservation, height_m: float) -> BodyFit:
        """Pose and shape a body to the person's landmarks (and silhouette), scaled to `height_m`."""
        ...


# ---- garments ----------------------------------------------------------------------------------------


@runtime_checkable
class GarmentSegmenter(Backend, Protocol):
    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W) float32 alpha of the garment: 1 on the garment, 0 on the background, holes kept."""
        ...


# ---- vision LLM (size charts, fabric) ----------------------------------------------------------------


class VisionLLMError(Exception):
    """The vision LLM answered, but not usefully: a refused or malformed request, a rejected key, output
    that does not fit the schema. Not retried; the wardrobe phase falls back to job.json or documented
    defaults and says so in its notes. Transient failures (rate limits, server errors, timeouts) raise
    `pipeline.errors.RetryableError` instead."""


@dataclass(frozen=True)
class SizeChartRow:
    """One size of a size chart: the body measurements (cm) it is made for; None where the chart is silent."""

    label: str
    chest_cm: float | None = None
    waist_cm: float | None = None
    hip_cm: float | None = None
    length_cm: float | None = None


@dataclass(frozen=True)
class SizeChartReading:
    rows: tuple[SizeChartRow, ...]
    notes: tuple[str, ...] = ()  # e.g. "converted from inches"


@dataclass(frozen=True)
class FabricReading:
    """What the garment photo suggests about its fabric and kind."""

    stretch: float  # 0 = rigid (denim, woven cotton), 1 = very stretchy (lycra)
    thickness_mm: float  # single layer
    category: str | None  # "upper" | "lower" | "full", None when unsure
    category_confidence: float  # 0..1
    material: str | None = None  # e.g. "cotton jersey"


@runtime_checkable
class VisionLLM(Backend, Protocol):
    def read_size_chart(self, rgb: np.ndarray) -> SizeChartReading:
        """The rows of the size chart in the image, in cm (converted when the chart is in inches)."""
        ...

    def infer_fabric(self, rgb: np.ndarray) -> FabricReading:
        """Fabric properties and category of the garment in a product photo."""
        ...


# ---- the GPU stack (docs/gpu.md): detection, promptable segmentation, try-on, refinement, quality gate ----------


@dataclass(frozen=True)
class Detection:
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) px
    score: float
    label: str = "person"


@runtime_checkable
class PersonDetector(Backend, Protocol):
    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Every person found, most confident first; an empty list when there is none."""
        ...


@runtime_checkable
class PromptSegmenter(Backend, Protocol):
    def segment_boxes(self, rgb: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> list[np.ndarray]:
        """(H, W) float32 mask of the main object inside each box, one per box, in one batch."""
        ...


@dataclass(frozen=True)
class TryOnRequest:
    """One view to repaint: the render of the dressed body, where to paint the garment, what to keep."""

    render: np.ndarray  # (H, W, 3) uint8: phase 3's render of the dressed body at this angle
    paint_mask: np.ndarray  # (H, W) float32: 1 where the garment may be painted
    keep_mask: np.ndarray  # (H, W) float32: 1 where the render must stay as it is (the face)
    garment: np.ndarray  # (h, w, 3) uint8: the garment photo (background already white)
    prompt: str  # the fit cues, e.g. "snug across the chest, relaxed waist"
    seed: int
    category: Category | None = None  # the wardrobe's garment category; None: not known


@runtime_checkable
class TryOnPainter(Backend, Protocol):
    def repaint(self, requests: list[TryOnRequest]) -> list[np.ndarray]:
        """(H, W, 3) uint8 per request, the same size as its render; the requests run as one batch."""
        ...


@dataclass(frozen=True)
class RefineRequest:
    """One view to make photoreal as a whole: the render (already try-on painted where a painter ran), its depth
    to hold the figure's shape, the person for identity, and what must stay exactly as it is."""

    render: np.ndarray  # (H, W, 3) uint8: the view as it stands
    depth: np.ndarray  # (H, W) float32: camera-frame z in metres, +inf where no body (pipeline.render.raster)
    person: np.ndarray  # (h, w, 3) uint8: the person's photo (or face crop) the result should look like
    keep_mask: np.ndarray  # (H, W) float32: 1 where the render must stay exactly as it is (the face, background)
    prompt: str  # what the view shows, e.g. "a photo of a person, seen from the back"
    seed: int
    strength: float = 0.35  # how far from the render the pass may go: 0 keeps it, 1 ignores it


@runtime_checkable
class ViewRefiner(Backend, Protocol):
    def refine(self, requests: list[RefineRequest]) -> list[np.ndarray]:
        """(H, W, 3) uint8 per request, the same size as its render and equal to it wherever its keep mask is 1."""
        ...


@dataclass(frozen=True)
class TryOnVerdict:
    """A vision model's look at the finished views."""

    acceptable: bool
    score: float  # 0 (unusable) .. 1 (convincing)
    problems: tuple[str, ...] = ()  # short, readable: "the sleeves are missing at 090"


@runtime_checkable
class QualityJudge(Backend, Protocol):
    def judge_tryon(self, views: list[np.ndarray], garment: np.ndarray, person: np.ndarray) -> TryOnVerdict:
        """Does the person in `views` (the 8 angles, 000 first) wear `garment` convincingly and stay `person`?"""
        ...


# ---- multi-view to 3D (the viewer3d phase) ---------------------------------------------------------------

MESH_VIEW_TAGS = ("front", "left", "back", "right")  # the subject's front, its left side, its back, its right side


@dataclass(frozen=True)
class MeshRequest:
    """The views a multi-view shape model rebuilds the subject from."""

    views: dict[str, np.ndarray]  # tag from MESH_VIEW_TAGS -> (H, W, 4) uint8 RGBA, alpha 255 on the subject
    seed: int

    def front(self, model: str) -> np.ndarray:
        """The `front` view, checked, for a single-view model named `model`: the tags known, (H, W, 4) uint8."""
        unknown = sorted(set(self.views) - set(MESH_VIEW_TAGS))
        if unknown or "front" not in self.views:
            raise ValueError(f"{model} needs a `front` view tagged from {', '.join(MESH_VIEW_TAGS)}; got "
                             f"{sorted(self.views)}")
        view = self.views["front"]
        if view.ndim != 3 or view.shape[2] != 4 or view.dtype != np.uint8:
            raise ValueError(f"the front view must be (H, W, 4) uint8 RGBA, got {view.shape} {view.dtype}")
        return view


@dataclass(frozen=True)
class ShapeMesh:
    """A mesh in the model's own normalised frame: the subject fits a cube about the origin, with the model's
    axes (which way is up and which way the front faces is the model's convention; the viewer3d phase finds both
    by matching silhouettes)."""

    vertices: np.ndarray  # (V, 3) float32
    faces: np.ndarray  # (F, 3) int32, counter-clockwise seen from outside

    @property
    def empty(self) -> bool:
        return len(self.faces) == 0


@runtime_checkable
class MeshBuilder(Backend, Protocol):
    def build_mesh(self, request: MeshRequest) -> ShapeMesh:
        """The subject's surface; an empty mesh when the model finds none."""
        ...
