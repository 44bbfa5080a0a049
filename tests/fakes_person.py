"""Fakes of the person protocols (`PersonLandmarker`, `FaceEmbedder`): deterministic, no models, no files.

`standing_person()` builds a plausible observation of one person standing front-on in an A-pose inside a
box (mediapipe's 33 landmarks in its order, world landmarks in metres, a filled mask); `fake_face()` a face
whose embedding depends only on an identity number (different identities are ~1.4 apart, far past the
0.6 threshold; the same identity gives the same embedding). The fakes return what they were given and
count their calls. The annotated assignments at the bottom type-check them against the protocols.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from pipeline.backends.protocols import Face, FaceEmbedder, PersonLandmarker, PersonObservation

Box = tuple[int, int, int, int]

# mediapipe pose order; (x, y) in units of body height: x from the body's centre line (the person's left
# is image right, as for someone facing the camera), y down from the top of the head.
STANDING = np.array([
    (0.0, 0.070),  # 0 nose
    (0.012, 0.055), (0.022, 0.055), (0.032, 0.055),  # 1-3 left eye inner, eye, outer
    (-0.012, 0.055), (-0.022, 0.055), (-0.032, 0.055),  # 4-6 right eye inner, eye, outer
    (0.045, 0.062), (-0.045, 0.062),  # 7-8 ears
    (0.015, 0.092), (-0.015, 0.092),  # 9-10 mouth left, right
    (0.110, 0.190), (-0.110, 0.190),  # 11-12 shoulders
    (0.160, 0.340), (-0.160, 0.340),  # 13-14 elbows
    (0.190, 0.470), (-0.190, 0.470),  # 15-16 wrists
    (0.200, 0.500), (-0.200, 0.500),  # 17-18 pinkies
    (0.195, 0.510), (-0.195, 0.510),  # 19-20 index fingers
    (0.180, 0.490), (-0.180, 0.490),  # 21-22 thumbs
    (0.065, 0.520), (-0.065, 0.520),  # 23-24 hips
    (0.070, 0.740), (-0.070, 0.740),  # 25-26 knees
    (0.075, 0.950), (-0.075, 0.950),  # 27-28 ankles
    (0.075, 0.975), (-0.075, 0.975),  # 29-30 heels
    (0.085, 0.995), (-0.085, 0.995),  # 31-32 foot index
])
LIMBS = ((11, 13), (13, 15), (12, 14), (14, 16), (23, 25), (25, 27), (24, 26), (26, 28))
HEIGHT_M = 1.70


def standing_landmarks(box: Box) -> np.ndarray:
    """(33, 3): x px, y px, visibility 1, for a person standing front-on whose height is the box's height."""
    x0, y0, x1, y1 = box
    height, centre = y1 - y0, (x0 + x1) / 2
    xy = STANDING * height + np.array([centre, y0])
    return np.hstack([xy, np.ones((len(xy), 1))]).astype(np.float32)


def standing_world() -> np.ndarray:
    """(33, 3) metres, origin between the hips, image axes (x right, y down), as mediapipe gives them."""
    hips = STANDING[[23, 24]].mean(axis=0)
    xy = (STANDING - hips) * HEIGHT_M
    return np.hstack([xy, np.zeros((len(xy), 1))]).astype(np.float32)


def standing_mask(landmarks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) float32: head, torso and limbs filled around the landmarks."""
    image = Image.new("L", size, 0)
    draw = ImageDraw.Draw(image)
    pts = [tuple(float(v) for v in p[:2]) for p in landmarks]
    height = landmarks[:, 1].max() - landmarks[:, 1].min()
    head = 0.065 * height
    draw.ellipse((pts[0][0] - head, pts[0][1] - 1.1 * head, pts[0][0] + head, pts[0][1] + head), fill=255)
    draw.polygon([pts[11], pts[12], pts[24], pts[23]], fill=255)
    for a, b in LIMBS:
        draw.line([pts[a], pts[b]], fill=255, width=max(1, int(0.05 * height)))
    return np.asarray(image, dtype=np.float32) / 255.0


def standing_person(size: tuple[int, int] = (768, 1024), box: Box | None = None, people: int = 1,
                    notes: Sequence[str] = ()) -> PersonObservation:
    """A person standing in `box` (default: centred, 90 % of the photo's height) of a photo of `size`."""
    width, height = size
    if box is None:
        tall = int(0.9 * height)
        box = (width // 2 - tall // 4, (height - tall) // 2, width // 2 + tall // 4, (height + tall) // 2)
    landmarks = standing_landmarks(box)
    return PersonObservation(image_size=size, landmarks=landmarks, world=standing_world(),
                             mask=standing_mask(landmarks, size), box=box, people=people, notes=tuple(notes))


class FakePersonLandmarker:
    """Returns the observation it was given (None: 'no person') for any image."""

    name = "fake-person"
    version = "1"

    def __init__(self, person: PersonObservation | None = None) -> None:
        self.person = person
        self.calls = 0

    def find_person(self, rgb: np.ndarray) -> PersonObservation | None:
        self.calls += 1
        return self.person


def fake_embedding(identity: int, dim: int = 128) -> np.ndarray:
    """A unit vector fixed by `identity`: two identities are ~1.41 apart, one identity 0 from itself."""
    vector = np.random.default_rng(identity).standard_normal(dim)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def fake_face(box: Box, identity: int, score: float = 0.95) -> Face:
    """A face in `box` with dlib's 5-point layout (eye corners and the base of the nose)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    rel = np.array([(0.80, 0.38), (0.62, 0.38), (0.20, 0.38), (0.38, 0.38), (0.50, 0.65)])
    points = (rel * [w, h] + [x0, y0]).astype(np.float32)
    return Face(box=box, landmarks=points, embedding=fake_embedding(identity), score=score)


class FakeFaceEmbedder:
    """Returns the faces it was given, largest first, for any image."""

    name = "fake-faces"
    version = "1"
    threshold = 0.6

    def __init__(self, faces: Sequence[Face] = ()) -> None:
        self._faces = sorted(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), reverse=True)
        self.calls = 0

    def faces(self, rgb: np.ndarray) -> list[Face]:
        self.calls += 1
        return list(self._faces)


_landmarker: PersonLandmarker = FakePersonLandmarker()
_embedder: FaceEmbedder = FakeFaceEmbedder()
