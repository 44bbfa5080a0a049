"""The CPU default person landmarker: mediapipe 0.10.21's legacy Pose (33 landmarks, world landmarks, mask).

Pose sees one person per call, so people are found one at a time: pose the photo, paint the person found
over with the background colour, pose again, until nothing more is found (at most `max_people`). The
largest person (longest torso in the image) is the one used; with several, pose runs once more on a crop
around them with the others painted out, and the observation says how many there were and which was used.
A single person is posed on the crop too when the first pose looks twisted (shoulders spanning under 45 %
of the body's width: Pose sometimes crosses the shoulders on photos cut at the face); the better of the two
is kept, and a note says so when both look wrong. A single front-facing person costs two Pose calls
(~65 ms on 2 cores for 768x1024: one that finds them, one that finds nobody else).

What counts as a person (anything else is skipped; no person left -> None):
- at least 3 of the 4 torso landmarks (shoulders, hips) confident (visibility >= 0.5) and inside the photo;
- upright: the hips below the shoulders, the torso within 60 degrees of vertical (a shirt print posed
  upside down, a person lying down);
- the segmentation mask covers the torso landmarks;
- the person used is prominent: torso (shoulders to hips) at least 15 % of the photo's height, about a
  standing figure half the frame tall. Smaller figures (patterns on a flat-lay shirt pose as tiny people)
  are not dressed; they still count among `people` down to 5 % of the height.

A photo cut at the chest (head and shoulders, the hips below the frame) finds nobody as it is (the 3-of-4
torso rule below). When the photo finds no person, Pose looks again on the photo padded below
(and at the sides) with a flat grey or the edge pixels repeated (`CHEST_PADS`, in order), and the
landmarks come back into the photo's frame: the hips and everything below keep their guessed positions
outside it, with visibility 0, and the mask is cut back to the photo. That person counts only with both
shoulders and the face (nose and eyes) confidently inside the photo, the hips below it, upright, the mask
on the shoulders and the shoulders at least a fifth of the photo wide; the observation says
"cut at the chest: hips and below assumed". It costs up to 3 more Pose calls, only on photos with nobody
found.

Landmarks outside the frame get visibility 0 (on photos cropped at the thigh mediapipe still gives the
off-image knees and ankles 0.45-0.7). The graphs load on first use, once per object, and every call into
them holds a lock: the runtime calls from several threads. mediapipe and cv2 are imported inside functions.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib.metadata import version as package_version
from typing import Any

import numpy as np

from pipeline.backends.protocols import PersonObservation
from pipeline.backends.quiet import native_stderr_silenced
from pipeline.backends.table import BuildContext

Box = tuple[int, int, int, int]

TORSO = (11, 12, 23, 24)  # left/right shoulder, left/right hip
MIN_VISIBILITY = 0.5
MIN_TORSO_POINTS = 3
MAX_TILT = 0.5  # cos(60 deg): how far the shoulders-to-hips line may lean from vertical
MIN_MASK_SUPPORT = 0.5
MIN_TORSO_FRACTION = 0.15  # the person used: torso length / photo height
MIN_OTHER_TORSO_FRACTION = 0.05  # a bystander counted among `people`
MAX_PEOPLE = 4
BLANK_GROW = 0.03  # painting a person out also covers this fraction of the photo's long side around them
MIN_SHOULDER_SPAN = 0.45  # shoulder distance / mask width below them; facing the camera: 0.55-0.85
CROP_MARGIN = 0.1  # the crop around the person used, as a fraction of their box's height
CHEST_PADS = ((1.0, 0.25, "grey"), (1.0, 0.0, "edge"), (0.5, 0.25, "grey"))  # (below, each side) x photo size
PAD_GREY = 128
HEAD = (0, 2, 5)  # nose, left and right eye
MIN_CHEST_SHOULDERS = 0.2  # a chest crop's shoulder distance / photo width
CHEST_CROP_NOTE = "cut at the chest: hips and below assumed (the body model's default pose and proportions)"
PARTS = {"head": range(0, 11), "hands": range(15, 23), "knees": range(25, 27), "feet": range(27, 33)}


@dataclass(frozen=True)
class Detection:
    """One pose result in full-photo coordinates."""

    landmarks: np.ndarray  # (33, 3) x px, y px, visibility (0 outside the photo)
    world: np.ndarray  # (33, 3) metres
    mask: np.ndarray  # (H, W) float32 over the whole photo

    @property
    def torso_centre(self) -> np.ndarray:
        return self.landmarks[list(TORSO), :2].mean(axis=0)

    @property
    def torso_length(self) -> float:
        """Shoulder midpoint to hip midpoint, px: the person's size in the photo, robust to cropped legs."""
        return float(np.linalg.norm(self.landmarks[[23, 24], :2].mean(0) - self.landmarks[[11, 12], :2].mean(0)))


class MediapipePersonLandmarker:
    name = "mediapipe-pose"

    def __init__(self, max_people: int = MAX_PEOPLE) -> None:
        self.max_people = max_people
        self._lock = threading.Lock()
        self._pose: Any = None

    @property
    def version(self) -> str:
        return package_version("mediapipe")

    def warm_up(self) -> None:
        """Build the graphs now (their first run, on a drawn figure, happens there)."""
        with self._lock:
            self._graph()

    def find_person(self, rgb: np.ndarray) -> PersonObservation | None:
        rgb = checked_rgb(rgb)
        height, width = rgb.shape[:2]
        people = [d for d in self._search(rgb) if d.torso_length >= MIN_OTHER_TORSO_FRACTION * height]
        if not people:
            return self._chest_crop(rgb)
        chosen = max(people, key=lambda d: d.torso_length)
        if chosen.torso_length < MIN_TORSO_FRACTION * height:
            return None
        others = [d for d in people if d is not chosen]
        notes = [crowd_note(chosen, others)] if others else []
        if others or shoulder_span(chosen) < MIN_SHOULDER_SPAN:
            second = self._second_look(rgb, chosen, others)
            if second is not None and (others or shoulder_span(second) > shoulder_span(chosen)):
                chosen = second
        if shoulder_span(chosen) < MIN_SHOULDER_SPAN:
            notes.append(f"the pose may be wrong: the shoulders span {shoulder_span(chosen):.0%} of the body's "
                         "width (a twisted or side-on pose)")
        notes += cut_off_notes(chosen.landmarks, width, height)
        return PersonObservation(image_size=(width, height), landmarks=chosen.landmarks, world=chosen.world,
                                 mask=chosen.mask, box=person_box(chosen), people=len(people), notes=tuple(notes))

    def _search(self, rgb: np.ndarray) -> list[Detection]:
        """Every person in the photo, in the order found: pose, paint the person out, pose again."""
        found: list[Detection] = []
        painted = np.zeros(rgb.shape[:2], dtype=bool)
        work = rgb
        for _ in range(self.max_people + 1):
            detection = self._detect(work)
            if detection is None or covers(painted, detection.torso_centre):
                break  # nothing more, or the painted-out person found again
            if rejection(detection) is None:
                found.append(detection)
                if len(found) == self.max_people:
                    break
            painted |= person_region(detection)
            work = painted_out(rgb, painted)
        return found

    def _chest_crop(self, rgb: np.ndarray) -> PersonObservation | None:
        """The person of a photo cut at the chest, posed on the photo padded below (None: nobody)."""
        height, width = rgb.shape[:2]
        for below, side, fill in CHEST_PADS:
            padded, left = padded_below(rgb, below, side, fill)
            found = self._detect(padded)
            if found is None:
                continue
            detection = unpadded(found, left, width, height)
            if chest_crop_rejection(detection, width, height) is None:
                notes = (CHEST_CROP_NOTE, *cut_off_notes(detection.landmarks, width, height))
                return PersonObservation(image_size=(width, height), landmarks=detection.landmarks,
                                         world=detection.world, mask=detection.mask, box=person_box(detection),
                                         people=1, notes=notes)
        return None

    def _second_look(self, rgb: np.ndarray, chosen: Detection, others: list[Detection]) -> Detection | None:
        """Pose the chosen person again on a crop around them, the others painted out; None when the crop
        finds nobody, no valid person or someone else."""
        region = np.zeros(rgb.shape[:2], dtype=bool)
        for other in others:
            region |= person_region(other)
        region &= chosen.mask < 0.5
        x0, y0, x1, y1 = grown_box(person_box(chosen), rgb.shape[1], rgb.shape[0])
        crop = (painted_out(rgb, region) if region.any() else rgb)[y0:y1, x0:x1]
        detection = self._detect(crop, offset=(x0, y0), size=(rgb.shape[1], rgb.shape[0]))
        if detection is None or rejection(detection) is not None:
            return None
        return detection if covers(chosen.mask > 0.5, detection.torso_centre) else None

    def _detect(self, rgb: np.ndarray, offset: tuple[int, int] = (0, 0),
                size: tuple[int, int] | None = None) -> Detection | None:
        """One mediapipe Pose call on `rgb` (a crop at `offset` of a photo of `size`, or the photo)."""
        with self._lock:
            result = self._graph().process(np.ascontiguousarray(rgb))
        if result.pose_landmarks is None:
            return None
        return to_detection(result, rgb.shape[1], rgb.shape[0], offset, size or (rgb.shape[1], rgb.shape[0]))

    def _graph(self) -> Any:
        """The Pose graph, built on first use (called under the lock). Its first runs print native warnings
        once: they run here, on a drawn figure, with stderr silenced."""
        if self._pose is None:
            import mediapipe as mp

            with native_stderr_silenced():
                pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True)
                pose.process(warm_up_figure())
            self._pose = pose
        return self._pose


# ---- pre- and post-processing: plain numpy ----------------------------------------------------------------


def checked_rgb(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image of shape (H, W, 3), got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb)


def to_detection(result: Any, crop_w: int, crop_h: int, offset: tuple[int, int], size: tuple[int, int]) -> Detection:
    """mediapipe's normalized crop coordinates -> photo pixels; the crop's mask pasted into a photo-size one."""
    x0, y0 = offset
    width, height = size
    marks = np.array([[p.x * crop_w + x0, p.y * crop_h + y0, p.visibility] for p in result.pose_landmarks.landmark],
                     dtype=np.float32)
    marks[~inside_frame(marks, width, height), 2] = 0.0
    world = np.array([[p.x, p.y, p.z] for p in result.pose_world_landmarks.landmark], dtype=np.float32)
    mask = np.zeros((height, width), dtype=np.float32)
    if result.segmentation_mask is not None:
        mask[y0:y0 + crop_h, x0:x0 + crop_w] = np.clip(result.segmentation_mask, 0.0, 1.0)
    return Detection(landmarks=marks, world=world, mask=mask)


def inside_frame(marks: np.ndarray, width: int, height: int) -> np.ndarray:
    x, y = marks[:, 0], marks[:, 1]
    return (x >= 0) & (x <= width) & (y >= 0) & (y <= height)


def rejection(detection: Detection) -> str | None:
    """Why a pose result is not a person (None when it is one); size is judged by the caller."""
    torso = detection.landmarks[list(TORSO)]
    if int((torso[:, 2] >= MIN_VISIBILITY).sum()) < MIN_TORSO_POINTS:
        return "too few confident torso landmarks inside the photo"
    down = detection.landmarks[[23, 24], :2].mean(0) - detection.landmarks[[11, 12], :2].mean(0)
    if down[1] <= MAX_TILT * float(np.linalg.norm(down)):
        return "not upright: the hips are not below the shoulders"
    if support(detection.mask, np.vstack([torso[:, :2], detection.torso_centre])) < MIN_MASK_SUPPORT:
        return "the person mask does not cover the torso"
    return None


def padded_below(rgb: np.ndarray, below: float, side: float, fill: str) -> tuple[np.ndarray, int]:
    """The photo with `below` x its height added under it and `side` x its width at each side, filled with
    flat grey or its edge pixels repeated; and the left pad's width (the photo's x offset in it)."""
    import cv2

    height, width = rgb.shape[:2]
    bottom, left = int(round(below * height)), int(round(side * width))
    if fill == "edge":
        return cv2.copyMakeBorder(rgb, 0, bottom, left, left, cv2.BORDER_REPLICATE), left
    grey = (PAD_GREY,) * 3
    return cv2.copyMakeBorder(rgb, 0, bottom, left, left, cv2.BORDER_CONSTANT, value=grey), left


def unpadded(detection: Detection, left: int, width: int, height: int) -> Detection:
    """A detection on the padded photo in the photo's frame: points outside it keep their position with
    visibility 0, the mask is cut back to the photo."""
    marks = detection.landmarks.copy()
    marks[:, 0] -= left
    marks[~inside_frame(marks, width, height), 2] = 0.0
    mask = np.ascontiguousarray(detection.mask[:height, left:left + width])
    return Detection(landmarks=marks, world=detection.world, mask=mask)


def chest_crop_rejection(detection: Detection, width: int, height: int) -> str | None:
    """Why a pose on the padded photo is not a person cut at the chest (None when it is one)."""
    marks = detection.landmarks
    if (marks[[11, 12], 2] < MIN_VISIBILITY).any():
        return "the shoulders are not both seen inside the photo"
    if (marks[list(HEAD), 2] < MIN_VISIBILITY).any():
        return "no face inside the photo"
    if (marks[[23, 24], 1] <= height).any():
        return "a hip falls inside the photo: not a chest crop"
    down = marks[[23, 24], :2].mean(0) - marks[[11, 12], :2].mean(0)
    if down[1] <= MAX_TILT * float(np.linalg.norm(down)):
        return "not upright: the hips are not below the shoulders"
    if float(np.linalg.norm(marks[11, :2] - marks[12, :2])) < MIN_CHEST_SHOULDERS * width:
        return "too small: the shoulders span under a fifth of the photo"
    shoulders = marks[[11, 12], :2]
    if support(detection.mask, np.vstack([shoulders, shoulders.mean(0)])) < MIN_MASK_SUPPORT:
        return "the person mask does not cover the shoulders"
    return None


def support(mask: np.ndarray, points: np.ndarray) -> float:
    """Mean mask value at the points (clipped to the photo)."""
    xs = np.clip(points[:, 0].astype(int), 0, mask.shape[1] - 1)
    ys = np.clip(points[:, 1].astype(int), 0, mask.shape[0] - 1)
    return float(mask[ys, xs].mean())


def shoulder_span(detection: Detection) -> float:
    """Shoulder-to-shoulder distance over the mask's width a little below the shoulders (arms included).
    0.55-0.85 on the dev photos; low when Pose has twisted the body (shoulders crossed) or it stands side-on."""
    shoulders = detection.landmarks[[11, 12], :2]
    y = int(np.clip(shoulders[:, 1].mean() + 0.15 * detection.torso_length, 0, detection.mask.shape[0] - 1))
    row = np.flatnonzero(detection.mask[y] > 0.5)
    if len(row) == 0:
        return 0.0
    return float(np.linalg.norm(shoulders[0] - shoulders[1]) / (row[-1] - row[0] + 1))


def covers(region: np.ndarray, point: np.ndarray) -> bool:
    x = int(np.clip(point[0], 0, region.shape[1] - 1))
    y = int(np.clip(point[1], 0, region.shape[0] - 1))
    return bool(region[y, x])


def person_region(detection: Detection) -> np.ndarray:
    """The pixels to paint over to hide a person: the mask, grown a little, or the landmarks' box."""
    import cv2

    height, width = detection.mask.shape
    region = (detection.mask > 0.3).astype(np.uint8)
    if region.sum() < 0.05 * detection.torso_length ** 2:  # no usable mask: the landmarks' box
        region[:] = 0
        x0, y0, x1, y1 = landmark_box(detection.landmarks, width, height)
        region[y0:y1, x0:x1] = 1
    grow = max(3, int(BLANK_GROW * max(width, height))) | 1
    return cv2.dilate(region, cv2.getStructuringElement(cv2.MORPH_RECT, (grow, grow))) > 0


def painted_out(rgb: np.ndarray, region: np.ndarray) -> np.ndarray:
    """A copy of the photo with `region` filled by the median colour of the rest (a plain background)."""
    rest = rgb[::6, ::6][~region[::6, ::6]]
    colour = np.median(rest, axis=0).astype(np.uint8) if len(rest) else np.zeros(3, dtype=np.uint8)
    out = rgb.copy()
    np.copyto(out, colour, where=region[:, :, None])
    return out


def landmark_box(marks: np.ndarray, width: int, height: int) -> Box:
    seen = marks[marks[:, 2] >= MIN_VISIBILITY]
    if len(seen) == 0:
        return 0, 0, width, height
    x0, y0 = np.floor(seen[:, :2].min(0)).astype(int)
    x1, y1 = np.ceil(seen[:, :2].max(0)).astype(int) + 1
    return max(0, int(x0)), max(0, int(y0)), min(width, int(x1)), min(height, int(y1))


def person_box(detection: Detection) -> Box:
    """(x0, y0, x1, y1), x1 and y1 exclusive: the mask's extent, or the confident landmarks' when it is empty."""
    ys, xs = np.nonzero(detection.mask > 0.5)
    if len(xs) == 0:
        height, width = detection.mask.shape
        return landmark_box(detection.landmarks, width, height)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def grown_box(box: Box, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    pad = int(CROP_MARGIN * (y1 - y0))
    return max(0, x0 - pad), max(0, y0 - pad), min(width, x1 + pad), min(height, y1 + pad)


def crowd_note(chosen: Detection, others: list[Detection]) -> str:
    """E.g. '2 people found; used the most prominent (the largest, on the left)'."""
    x = chosen.torso_centre[0]
    xs = [other.torso_centre[0] for other in others]
    where = "on the left" if all(x < o for o in xs) else "on the right" if all(x > o for o in xs) else "in the middle"
    return f"{len(others) + 1} people found; used the most prominent (the largest, {where})"


def cut_off_notes(marks: np.ndarray, width: int, height: int) -> list[str]:
    """A note naming the body parts the photo cuts off (all their landmarks lie outside it), if any."""
    inside = inside_frame(marks, width, height)
    outside = [part for part, index in PARTS.items() if not inside[list(index)].any()]
    return [f"outside the photo: {', '.join(outside)}"] if outside else []


def warm_up_figure() -> np.ndarray:
    """A drawn standing figure (head, torso, arms, legs) that Pose finds: its first landmark run happens here."""
    import cv2

    image = np.full((1024, 768, 3), 232, dtype=np.uint8)
    skin, top, legs, cx = (224, 178, 150), (90, 110, 140), (50, 55, 70), 384
    cv2.ellipse(image, (cx, 155), (55, 65), 0, 0, 360, skin, -1)
    cv2.rectangle(image, (cx - 22, 215), (cx + 22, 250), skin, -1)
    cv2.fillConvexPoly(image, np.array([[cx - 120, 250], [cx + 120, 250], [cx + 100, 560], [cx - 100, 560]]), top)
    cv2.rectangle(image, (cx - 100, 540), (cx + 100, 620), legs, -1)
    for side in (-1, 1):
        arm = np.array([[cx + side * 115, 265], [cx + side * 190, 430], [cx + side * 215, 600]])
        leg = np.array([[cx + side * 55, 560], [cx + side * 80, 780], [cx + side * 95, 960]])
        cv2.polylines(image, [arm], False, skin, 44)
        cv2.polylines(image, [leg], False, legs, 70)
    return image


def build(ctx: BuildContext) -> MediapipePersonLandmarker:
    return MediapipePersonLandmarker()
