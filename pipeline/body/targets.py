"""What the fit aims at, read from one `PersonObservation`: plain numpy, no model.

mediapipe's 33 pose landmarks are mapped onto anny's 23 COCO keypoints. A keypoint is used when mediapipe
sees it (visibility >= 0.5) *and* it lies inside the frame: on photos cropped at the thigh, off-image knees
and ankles still get visibility 0.45-0.71. Ears disagree between the two conventions by ~20 px and weigh
little; mediapipe has no small toe. Limb directions come from mediapipe's world landmarks (metres, axes
aligned with the camera: x right, y down, z away).
"""

from __future__ import annotations

import numpy as np

from pipeline.backends.protocols import PersonObservation

COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle", "left_big_toe", "right_big_toe", "left_small_toe",
    "right_small_toe", "left_heel", "right_heel",
)  # fmt: skip
# mediapipe landmark for each COCO keypoint (-1: none); the foot index (toe tip) stands for the big toe.
MEDIAPIPE_FOR_COCO = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28, 31, 32, -1, -1, 29, 30])
# How much each keypoint counts, on top of its visibility.
KEYPOINT_WEIGHTS = np.array([1.0, 0.5, 0.5, 0.15, 0.15] + [1.0] * 12 + [0.4, 0.4, 0.0, 0.0, 0.4, 0.4])
MIN_VISIBILITY = 0.5
EDGE_MARGIN = 0.005  # a keypoint within this fraction of the image size from the border counts as outside

# Limbs (COCO index pairs) whose 3D direction the fit takes from mediapipe's world landmarks.
LIMBS = np.array([(5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14, 16), (5, 6), (11, 12)])
OFF_FRAME_LIMB_WEIGHT = 0.1  # a limb with an end outside the photo: mediapipe's 3D guess, barely trusted


def in_frame(points: np.ndarray, size: tuple[int, int], margin: float = EDGE_MARGIN) -> np.ndarray:
    """(N,) whether each (x, y) lies inside the image, `margin` (a fraction of the size) from its border."""
    width, height = size
    mx, my = margin * width, margin * height
    x, y = points[:, 0], points[:, 1]
    return (x >= mx) & (x <= width - 1 - mx) & (y >= my) & (y <= height - 1 - my)


def keypoint_targets(person: PersonObservation) -> np.ndarray:
    """(23, 3) COCO targets: x px, y px, weight (0 = not used)."""
    has = MEDIAPIPE_FOR_COCO >= 0
    landmarks = person.landmarks[np.where(has, MEDIAPIPE_FOR_COCO, 0)].astype(np.float64)
    visible = has & (landmarks[:, 2] >= MIN_VISIBILITY) & in_frame(landmarks[:, :2], person.image_size)
    weights = np.where(visible, KEYPOINT_WEIGHTS * landmarks[:, 2], 0.0)
    return np.concatenate([landmarks[:, :2], weights[:, None]], axis=1)


def limb_targets(person: PersonObservation) -> tuple[np.ndarray, np.ndarray]:
    """Unit directions (L, 3) of LIMBS in mediapipe's world frame, and their weights (L,)."""
    index = MEDIAPIPE_FOR_COCO[LIMBS]  # (L, 2)
    world = person.world[index].astype(np.float64)
    vector = world[:, 1] - world[:, 0]
    length = np.linalg.norm(vector, axis=1, keepdims=True)
    visibility = person.landmarks[index, 2].min(axis=1)
    inside = in_frame(person.landmarks[index.ravel(), :2], person.image_size).reshape(-1, 2).all(axis=1)
    weights = np.where(visibility >= MIN_VISIBILITY, visibility, 0.0) * np.where(inside, 1.0, OFF_FRAME_LIMB_WEIGHT)
    weights = np.where(length[:, 0] > 1e-6, weights, 0.0)
    return vector / np.maximum(length, 1e-6), weights


def focal_length_px(size: tuple[int, int], factor: float) -> float:
    """A fixed focal length for a photo with no EXIF: `factor` times its longer side (1.3 ~ a 47 mm lens)."""
    return factor * float(max(size))


def outside_distance(mask: np.ndarray) -> np.ndarray:
    """(H, W) float32: each pixel's distance in pixels to the person mask (0 on the mask)."""
    import cv2

    outside = (mask <= 0.5).astype(np.uint8)
    return cv2.distanceTransform(outside, cv2.DIST_L2, 3).astype(np.float32)


def contour_points(mask: np.ndarray, count: int) -> np.ndarray:
    """About `count` (x, y) points spread along the person mask's outer contours, leaving out the stretches
    along the photo's border (the body goes on beyond the frame there: no real edge)."""
    import cv2

    contours, _ = cv2.findContours((mask > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return np.zeros((0, 2), dtype=np.float64)
    points = np.concatenate([c[:, 0, :] for c in contours]).astype(np.float64)
    height, width = mask.shape
    inside = in_frame(points, (width, height), margin=0.004)
    points = points[inside]
    step = max(1, len(points) // max(count, 1))
    return points[::step]
