"""Fakes and drawn garments for the wardrobe phase's tests.

- `FakeVisionLLM` and `FakeSegmenter` implement the same protocols as the real backends; the module-level
  annotations below make a type checker reject them if they drift, and the tests check them at runtime.
- `draw_*` paint garments on plain backgrounds with a known truth mask: fabric with a little weave noise
  and shading, an optional soft drop shadow, then a JPEG round trip, so the segmenter sees what it sees
  in product photos rather than flat synthetic colour.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from infra.folder_store import FolderStore
from pipeline.backends.protocols import (
    FabricReading,
    GarmentSegmenter,
    SizeChartReading,
    SizeChartRow,
    VisionLLM,
    VisionLLMError,
)
from pipeline.phase_api import PhaseIO, PhaseResult, PhaseTask
from pipeline.plan import InputRef
from pipeline.spec import JobSpec
from pipeline.wardrobe.phase import WardrobeBackends, analyse_garment

W, H = 600, 800


@dataclass
class FakeVisionLLM:
    """Answers from fixed readings, or raises `error`; records what it was asked."""

    fabric: FabricReading = FabricReading(stretch=0.6, thickness_mm=0.8, category="full", category_confidence=0.9,
                                          material="viscose jersey")
    chart: SizeChartReading = SizeChartReading(rows=(SizeChartRow("S", chest_cm=88, waist_cm=70, hip_cm=94),
                                                     SizeChartRow("M", chest_cm=94, waist_cm=76, hip_cm=100)))
    error: Exception | None = None
    calls: list[str] = field(default_factory=list)
    name: str = "fake-vision-llm"
    version: str = "1"

    def read_size_chart(self, rgb: np.ndarray) -> SizeChartReading:
        self.calls.append("read_size_chart")
        if self.error:
            raise self.error
        return self.chart

    def infer_fabric(self, rgb: np.ndarray) -> FabricReading:
        self.calls.append("infer_fabric")
        if self.error:
            raise self.error
        return self.fabric


@dataclass
class FakeSegmenter:
    """Garment = whatever is darker than near-white: enough for drawn garments on white."""

    name: str = "fake-segmenter"
    version: str = "1"

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        return (rgb.min(axis=2) < 235).astype(np.float32)


_llm: VisionLLM = FakeVisionLLM()
_segmenter: GarmentSegmenter = FakeSegmenter()
REFUSING_LLM = FakeVisionLLM(error=VisionLLMError("400 INVALID_ARGUMENT: image too small"))


# ---- drawn garments ------------------------------------------------------------------------------------

TSHIRT = [(200, 150), (255, 120), (345, 120), (400, 150), (520, 270), (465, 330), (410, 270),
          (410, 620), (190, 620), (190, 270), (135, 330), (80, 270)]
NECK = (300, 118, 52, 38)  # ellipse centre x, y, axes: the neckline notch, open to the background
TROUSERS = [(190, 80), (410, 80), (430, 740), (320, 740), (300, 330), (280, 740), (170, 740)]
DRESS = [(245, 60), (265, 60), (270, 150), (330, 150), (335, 60), (355, 60), (370, 190), (350, 330),
         (470, 760), (130, 760), (250, 330), (230, 190)]
SKIRT = [(220, 160), (380, 160), (470, 620), (130, 620)]


def texture(shape: tuple[int, int], colour: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Fabric: the colour with weave noise and a gentle top-to-bottom shading."""
    rng = np.random.default_rng(seed)
    shade = np.linspace(1.0, 0.93, shape[0])[:, None, None]
    fabric = np.array(colour, np.float32)[None, None, :] * shade + rng.normal(0, 2.5, (*shape, 3))
    return fabric


def paint(truth: np.ndarray, colour: tuple[int, int, int], background: tuple[int, int, int],
          shadow: float = 0.0, seed: int = 0) -> np.ndarray:
    """Composite a garment (truth mask) on a plain background, with an optional soft drop shadow, and
    round-trip it through JPEG. Returns uint8 RGB."""
    bg = np.empty((*truth.shape, 3), np.float32)
    bg[:] = background
    if shadow:
        offset = np.roll(np.roll(truth.astype(np.float32), 10, axis=0), 8, axis=1)
        bg *= 1.0 - shadow * cv2.GaussianBlur(offset, (0, 0), 9)[..., None]
    a = cv2.GaussianBlur(truth.astype(np.float32), (3, 3), 0.6)[..., None]
    image = texture((truth.shape[0], truth.shape[1]), colour, seed) * a + bg * (1.0 - a)
    return jpeg_round_trip(np.clip(image, 0, 255).astype(np.uint8))


def polygon_mask(points: list[tuple[int, int]], holes: tuple[tuple[int, int, int, int], ...] = ()) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    cv2.fillPoly(mask, [np.array(points, np.int32)], (1,))
    for cx, cy, ax, ay in holes:
        cv2.ellipse(mask, (cx, cy), (ax, ay), 0, 0, 360, (0,), -1)
    return mask.astype(bool)


def tshirt_mask(keyhole: bool = False) -> np.ndarray:
    holes = (NECK, (300, 260, 30, 45)) if keyhole else (NECK,)
    return polygon_mask(TSHIRT, holes)


def jpeg_round_trip(rgb: np.ndarray, quality: int = 90) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def encode(rgb: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt)
    return buf.getvalue()


def iou(alpha: np.ndarray, truth: np.ndarray) -> float:
    solid = alpha > 0.5
    return float((solid & truth).sum() / max(1, (solid | truth).sum()))


# ---- running the phase -----------------------------------------------------------------------------------


def input_ref(store: FolderStore, key: str, data: bytes) -> InputRef:
    store.put(key, data)
    return InputRef(key=key, etag=hashlib.md5(data).hexdigest(), size=len(data),
                    sha256=hashlib.sha256(data).hexdigest())


def run_wardrobe(store: FolderStore, backends: WardrobeBackends, garment: bytes, spec: JobSpec | None = None,
                 size_chart: bytes | None = None, name: str = "g") -> tuple[PhaseResult, dict[str, bytes]]:
    """Run the phase on a garment upload; returns its result and the files it wrote, by name."""
    inputs = {"garment": input_ref(store, f"incoming/{name}/garment.png", garment)}
    if size_chart is not None:
        inputs["size_chart"] = input_ref(store, f"incoming/{name}/size_chart.png", size_chart)
    task = PhaseTask(phase="wardrobe", run_key=f"k-{name}", inputs=inputs, upstream={}, spec=spec or JobSpec())
    phase_io = PhaseIO(store, task)
    result = analyse_garment(task, phase_io, backends)
    return result, {f.name: store.get(f.key) for f in phase_io.written}
