"""A person landmarker for crowded photos: a detector finds the people, the landmarker poses the chosen one.

mediapipe's Pose sees one person per call and is thrown by crowds and small figures; a detector (YOLO on the
GPU) is not. So: detect every person, keep the most prominent (the largest box, weighted by its score), crop
around it with a margin, pose the crop (mediapipe on the CPU) and map the landmarks back to photo pixels. When a
promptable segmenter (SAM) is given, its mask for the chosen box replaces the landmarker's person mask. The
observation counts every person the detector found and says which was used.

Everything but the three backends' calls is plain numpy: choosing, cropping, mapping back.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pipeline.backends.protocols import Detection, PersonDetector, PersonLandmarker, PersonObservation, PromptSegmenter
from pipeline.backends.table import BuildContext

Box = tuple[int, int, int, int]
CROP_MARGIN = 0.15  # around the chosen box, as a fraction of its height (Pose wants some context)


class DetectedPersonLandmarker:
    def __init__(self, detector: PersonDetector, landmarker: PersonLandmarker,
                 segmenter: PromptSegmenter | None = None) -> None:
        self.detector = detector
        self.landmarker = landmarker
        self.segmenter = segmenter

    @property
    def name(self) -> str:
        parts = [self.detector.name, self.landmarker.name] + ([self.segmenter.name] if self.segmenter else [])
        return "+".join(parts)

    @property
    def version(self) -> str:
        parts = [self.detector, self.landmarker] + ([self.segmenter] if self.segmenter else [])
        return "; ".join(f"{p.name} {p.version}" for p in parts)

    def warm_up(self) -> None:
        for part in (self.detector, self.landmarker, self.segmenter):
            warm = getattr(part, "warm_up", None)
            if callable(warm):
                warm()

    def find_person(self, rgb: np.ndarray) -> PersonObservation | None:
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected a uint8 RGB image of shape (H, W, 3), got {rgb.dtype} {rgb.shape}")
        height, width = rgb.shape[:2]
        people = self.detector.detect(rgb)
        if not people:
            return None
        chosen = most_prominent(people)
        crop = grown_box(chosen.box, width, height)
        x0, y0, x1, y1 = crop
        found = self.landmarker.find_person(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
        if found is None:
            return None
        person = in_photo(found, crop, (width, height), chosen.box)
        if self.segmenter is not None:
            person = replace(person, mask=self.segmenter.segment_boxes(rgb, [chosen.box])[0].astype(np.float32))
        return replace(person, people=len(people), notes=notes(found.notes, people, chosen))


# ---- plain numpy ------------------------------------------------------------------------------------------


def prominence(detection: Detection) -> float:
    x0, y0, x1, y1 = detection.box
    return float(max(0, x1 - x0) * max(0, y1 - y0)) * detection.score


def most_prominent(people: list[Detection]) -> Detection:
    """The largest box, weighted by its score (a big, sure person over a small or doubtful one)."""
    return max(people, key=prominence)


def grown_box(box: Box, width: int, height: int, margin: float = CROP_MARGIN) -> Box:
    """`box` grown by `margin` of its height on every side, clipped to the photo."""
    x0, y0, x1, y1 = box
    pad = int(round(margin * (y1 - y0)))
    return max(0, x0 - pad), max(0, y0 - pad), min(width, x1 + pad), min(height, y1 + pad)


def in_photo(found: PersonObservation, crop: Box, size: tuple[int, int], box: Box) -> PersonObservation:
    """An observation made on the crop at `crop` -> photo coordinates: landmarks shifted (visibility kept), the
    crop's mask pasted into a photo-size one, the detector's box, the photo's size. World landmarks are metres
    around the hips and do not move."""
    x0, y0, x1, y1 = crop
    width, height = size
    landmarks = found.landmarks.astype(np.float32).copy()
    landmarks[:, 0] += x0
    landmarks[:, 1] += y0
    mask = np.zeros((height, width), dtype=np.float32)
    mask[y0:y1, x0:x1] = found.mask[: y1 - y0, : x1 - x0]
    return replace(found, image_size=(width, height), landmarks=landmarks, mask=mask, box=box)


def notes(landmarker_notes: tuple[str, ...], people: list[Detection], chosen: Detection) -> tuple[str, ...]:
    """The landmarker's notes on the crop (less its own head count: the detector's replaces it), and which
    person was used when there were several."""
    kept = tuple(n for n in landmarker_notes if "people found" not in n)
    if len(people) < 2:
        return kept
    return (f"{len(people)} people found; used the most prominent (the largest box x score, "
            f"at {chosen.box})", *kept)


def build(ctx: BuildContext) -> DetectedPersonLandmarker:
    return DetectedPersonLandmarker(ctx.part("ultralytics-yolo"), ctx.part("mediapipe-pose"), ctx.part("sam"))
