"""DWPose whole-body pose (ONNX), drawn as FASHN VTON v1.5 was trained to see it: the person's pose condition.

Two ONNX models from `yzd-v/DWPose` (Apache-2.0): `yolox_l.onnx` (YOLOX-L, finds people) and
`dw-ll_ucoco_384.onnx` (DWPose-l, 133 COCO-WholeBody keypoints per person, SimCC heads, 288x384 crops). The steps
are those of FASHN's `fashn_vton/dwpose` (adapted from IDEA-Research/DWPose's onnx branch and YOLOX, all
Apache-2.0), written again here as plain numpy so each one is tested on its own:
- `detector_input` / `people_boxes`: letterbox to 640 (grey 114, top-left), decode the grid, class-aware NMS, keep
  people scoring over 0.3;
- `pose_input` / `keypoints_from_simcc`: each box grown 1.25x to the 3:4 crop, warped, normalised; the SimCC
  argmax (half-pixel bins) mapped back through the crop;
- `openpose_order`: the 17 COCO body points + a neck (the shoulders' mean) in OpenPose's 18-point order;
- `person_pose` / `draw_pose_gray`: the most prominent person, coordinates over the image's size, drawn in grey
  (limbs, then joints, then hands and face) exactly as FASHN's `draw_pose(..., grayscale=True)` draws them.
Images go in as BGR uint8, as FASHN hands them to DWPose. onnxruntime is imported only where the sessions open.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.backends.gpu.insightface_face import chosen_providers

DETECTOR_FILE = "yolox_l.onnx"
POSE_FILE = "dw-ll_ucoco_384.onnx"
DETECTOR_SIZE = (640, 640)  # (h, w)
STRIDES = (8, 16, 32)
NMS_IOU, MIN_DETECTION, MIN_PERSON = 0.45, 0.1, 0.3
BOX_PADDING = 1.25
POSE_MEAN = np.array([123.675, 116.28, 103.53])
POSE_STD = np.array([58.395, 57.12, 57.375])
SIMCC_SPLIT = 2.0
VISIBLE = 0.3  # a keypoint scoring above this is drawn
EPS = 0.01  # hand and face points at or below this (normalised) are not drawn: -1 marks the invisible ones
LIMBS = ((2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13), (13, 14),
         (2, 1), (1, 15), (15, 17), (1, 16), (16, 18))  # OpenPose's, 1-based
HAND_EDGES = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11), (11, 12),
              (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20))
MMPOSE_TO_OPENPOSE = ((17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3),
                      (1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17))


@dataclass(frozen=True)
class PersonPose:
    """One person's keypoints as fractions of the image's width and height; -1 where not visible."""

    body: np.ndarray  # (18, 2) OpenPose order: nose, neck, right shoulder, elbow, wrist, left ..., hips, knees, ...
    body_visible: np.ndarray  # (18,) bool
    hands: np.ndarray  # (2, 21, 2)
    face: np.ndarray  # (68, 2)

    @classmethod
    def nobody(cls) -> PersonPose:
        """No person (a flat-lay garment): nothing is drawn."""
        return cls(np.full((18, 2), -1.0), np.zeros(18, bool), np.full((2, 21, 2), -1.0), np.full((68, 2), -1.0))

    def y(self, *points: int) -> float | None:
        """The mean height (fraction of the image) of those visible body points, None if none is visible."""
        seen = [self.body[p, 1] for p in points if self.body_visible[p]]
        return float(np.mean(seen)) if seen else None


# ---- the detector ------------------------------------------------------------------------------------------


def detector_input(bgr: np.ndarray, size: tuple[int, int] = DETECTOR_SIZE) -> tuple[np.ndarray, float]:
    """(1, 3, h, w) float32: the image scaled to fit `size` = (h, w), top-left, on grey 114; and the scale."""
    import cv2

    ratio = min(size[0] / bgr.shape[0], size[1] / bgr.shape[1])
    width, height = int(bgr.shape[1] * ratio), int(bgr.shape[0] * ratio)
    padded = np.full((size[0], size[1], 3), 114, dtype=np.uint8)
    padded[:height, :width] = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.uint8)
    return np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32), ratio


def decode_grid(raw: np.ndarray, size: tuple[int, int] = DETECTOR_SIZE) -> np.ndarray:
    """YOLOX's raw (N, 5 + classes) rows -> boxes as (cx, cy, w, h) in input pixels, then the scores."""
    grids, strides = [], []
    for stride in STRIDES:
        xv, yv = np.meshgrid(np.arange(size[1] // stride), np.arange(size[0] // stride))
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        strides.append(np.full((grids[-1].shape[0], 1), stride))
    grid, stride_col = np.concatenate(grids), np.concatenate(strides)
    out = np.array(raw, dtype=np.float64)
    out[:, :2] = (out[:, :2] + grid) * stride_col
    out[:, 2:4] = np.exp(out[:, 2:4]) * stride_col
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy NMS over (x0, y0, x1, y1) boxes, pixel-inclusive areas (YOLOX's demo)."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]) + 1)
        overlap = w * h / (areas[i] + areas[order[1:]] - w * h)
        order = order[np.where(overlap <= iou)[0] + 1]
    return keep


def people_boxes(raw: np.ndarray, ratio: float) -> np.ndarray:
    """(P, 4) image-pixel boxes of the people in the detector's raw output (N, 85), most confident first."""
    decoded = decode_grid(raw)
    centre, extent = decoded[:, :2], decoded[:, 2:4]
    boxes = np.concatenate([centre - extent / 2, centre + extent / 2], axis=1) / ratio
    scores = decoded[:, 4] * decoded[:, 5]  # objectness x the person class (NMS is per class: only people matter)
    candidates = scores > MIN_DETECTION
    boxes, scores = boxes[candidates], scores[candidates]
    keep = [i for i in nms(boxes, scores, NMS_IOU) if scores[i] > MIN_PERSON]
    return boxes[keep].reshape(-1, 4)


# ---- the pose model ----------------------------------------------------------------------------------------


def crop_frame(box: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(centre, scale): the box's centre and its size grown by 1.25 and widened to the model's aspect (w / h)."""
    centre = (box[:2] + box[2:]) / 2
    w, h = (box[2:] - box[:2]) * BOX_PADDING
    aspect = input_size[0] / input_size[1]
    return centre, np.array([w, w / aspect] if w > h * aspect else [h * aspect, h])


def warp_matrix(centre: np.ndarray, scale: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """(2, 3) affine taking the crop (centre, scale) onto the model's input of `output_size` = (w, h)."""
    import cv2

    def third(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = a - b
        return b + np.array([-d[1], d[0]])

    dst_w, dst_h = output_size
    src = np.zeros((3, 2), np.float32)
    src[0], src[1] = centre, centre + np.array([0.0, scale[0] * -0.5])
    src[2] = third(src[0], src[1])
    dst = np.zeros((3, 2), np.float32)
    dst[0], dst[1] = [dst_w * 0.5, dst_h * 0.5], np.array([dst_w * 0.5, dst_h * 0.5]) + [0.0, dst_w * -0.5]
    dst[2] = third(dst[0], dst[1])
    return cv2.getAffineTransform(src, dst)


def pose_input(bgr: np.ndarray, box: np.ndarray, input_size: tuple[int, int]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(1, 3, h, w) float32 crop of one person for `input_size` = (w, h), normalised; its centre and scale."""
    import cv2

    centre, scale = crop_frame(box, input_size)
    crop = cv2.warpAffine(bgr, warp_matrix(centre, scale, input_size), input_size, flags=cv2.INTER_LINEAR)
    normalised = (crop - POSE_MEAN) / POSE_STD
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[None], dtype=np.float32), centre, scale


def keypoints_from_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, input_size: tuple[int, int],
                         centre: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, 2) image-pixel keypoints and (K,) scores from one crop's SimCC outputs (1, K, bins)."""
    x_bins, y_bins = simcc_x.reshape(simcc_x.shape[-2], -1), simcc_y.reshape(simcc_y.shape[-2], -1)
    locs = np.stack((np.argmax(x_bins, axis=1), np.argmax(y_bins, axis=1)), axis=-1).astype(np.float32)
    scores = np.minimum(np.amax(x_bins, axis=1), np.amax(y_bins, axis=1))
    locs[scores <= 0.0] = -1
    keypoints = locs / SIMCC_SPLIT / np.array(input_size) * scale + centre - scale / 2
    return keypoints, scores


def openpose_order(keypoints: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, 133, 2) and (P, 133) COCO-WholeBody -> (P, 134, ...): a neck inserted at 17, the body in OpenPose order
    (the neck's score is 1 when both shoulders score over 0.3, else 0)."""
    info = np.concatenate((keypoints, scores[..., None]), axis=-1)
    neck = np.mean(info[:, [5, 6]], axis=1)
    neck[:, 2] = np.logical_and(info[:, 5, 2] > VISIBLE, info[:, 6, 2] > VISIBLE).astype(int)
    info = np.insert(info, 17, neck, axis=1)
    mmpose, openpose = (list(i) for i in MMPOSE_TO_OPENPOSE)
    info[:, openpose] = info[:, mmpose]
    return info[..., :2], info[..., 2]


def most_prominent(keypoints: np.ndarray, scores: np.ndarray) -> int:
    """The person whose visible body points (1..13, the head left out) score most times the area they span."""
    best = np.zeros(len(scores))
    for n in range(len(scores)):
        seen = scores[n, 1:14] > VISIBLE
        points = keypoints[n, 1:14][seen]
        points = points[(points > 0).all(axis=1)]
        area = float(np.prod(points.max(axis=0) - points.min(axis=0))) if len(points) else 0.0
        best[n] = scores[n, 1:14][seen].sum() * area
    return int(np.argmax(best)) if best.any() else int(np.argmax((scores[:, 1:14] * (scores[:, 1:14] > VISIBLE))
                                                                   .sum(axis=1)))


def person_pose(keypoints: np.ndarray, scores: np.ndarray, size: tuple[int, int]) -> PersonPose:
    """The most prominent person of (P, 134, 2) keypoints in OpenPose order, over the image's `size` = (w, h)."""
    n = most_prominent(keypoints, scores) if len(scores) > 1 else 0
    points = keypoints[n] / np.array(size, dtype=np.float64)
    visible = scores[n] >= VISIBLE
    body_visible = scores[n, :18] > VISIBLE
    hidden = np.where(visible[:, None], points, -1.0)
    return PersonPose(body=np.where(body_visible[:, None], points[:18], -1.0), body_visible=body_visible,
                      hands=np.stack([hidden[92:113], hidden[113:134]]), face=hidden[24:92])


# ---- drawing (FASHN's grayscale pose image) ------------------------------------------------------------------


def draw_pose_gray(pose: PersonPose, height: int, width: int) -> np.ndarray:
    """(H, W) uint8: limbs at 0.6 of their grey, then joints, hands and face points, as FASHN draws them."""
    import cv2

    grey = np.linspace(20, 240, 18).astype(np.uint8)
    limbs = np.zeros((height, width), np.uint8)
    body = pixels(pose.body, width, height)
    for i, (a, b) in enumerate(LIMBS):
        if pose.body_visible[a - 1] and pose.body_visible[b - 1]:
            (xa, ya), (xb, yb) = body[a - 1], body[b - 1]
            length = int(math.hypot(xa - xb, ya - yb))
            angle = int(math.degrees(math.atan2(ya - yb, xa - xb)))
            polygon = cv2.ellipse2Poly(((xa + xb) // 2, (ya + yb) // 2), (length // 2, 4), angle, 0, 360, 1)
            cv2.fillConvexPoly(limbs, polygon, int(grey[i]))
    canvas = (limbs * 0.6).astype(np.uint8)
    for point in range(1, 19):
        first_limb = next(i for i, limb in enumerate(LIMBS) if point in limb)
        if pose.body_visible[point - 1]:
            cv2.circle(canvas, body[point - 1], 4, min(255, int(grey[first_limb] * 1.3)), thickness=-1)
    edge_grey = np.linspace(160, 220, len(HAND_EDGES)).astype(np.uint8)
    for hand in pose.hands:
        joints = pixels(hand, width, height)
        for i, (a, b) in enumerate(HAND_EDGES):
            if min(*joints[a], *joints[b]) > EPS:
                cv2.line(canvas, joints[a], joints[b], int(edge_grey[i]), thickness=2)
        for x, y in joints:
            if x > EPS and y > EPS:
                cv2.circle(canvas, (x, y), 4, 240, thickness=-1)
    for x, y in pixels(pose.face, width, height):
        if x > EPS and y > EPS:
            cv2.circle(canvas, (x, y), 3, 200, thickness=-1)
    return canvas


def pixels(points: np.ndarray, width: int, height: int) -> list[tuple[int, int]]:
    """Fractions of the image -> whole pixels, truncated as FASHN's drawing truncates them (-1 stays below 0)."""
    return [(int(x * width), int(y * height)) for x, y in points]


# ---- the detector and pose model together ----------------------------------------------------------------------


class DWPose:
    """The two ONNX sessions of a DWPose folder (`yolox_l.onnx`, `dw-ll_ucoco_384.onnx`), CUDA then CPU."""

    def __init__(self, folder: Path, providers: list[str] | None = None) -> None:
        import onnxruntime

        missing = [name for name in (DETECTOR_FILE, POSE_FILE) if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"no DWPose model in {folder} ({', '.join(missing)} missing): pull the weights")
        chosen = chosen_providers(providers, onnxruntime.get_available_providers())
        self.detector: Any = onnxruntime.InferenceSession(str(folder / DETECTOR_FILE), providers=chosen)
        self.pose: Any = onnxruntime.InferenceSession(str(folder / POSE_FILE), providers=chosen)
        height, width = self.pose.get_inputs()[0].shape[2:]
        self.input_size = (int(width), int(height))

    def __call__(self, bgr: np.ndarray) -> PersonPose:
        """The most prominent person's pose (the whole image is the box when no person is found)."""
        image, ratio = detector_input(bgr)
        raw = self.detector.run(None, {self.detector.get_inputs()[0].name: image})[0][0]
        boxes = people_boxes(raw, ratio)
        if len(boxes) == 0:
            boxes = np.array([[0, 0, bgr.shape[1], bgr.shape[0]]], dtype=np.float64)
        keypoints, scores = [], []
        for box in boxes:
            crop, centre, scale = pose_input(bgr, box, self.input_size)
            simcc_x, simcc_y = self.pose.run(None, {self.pose.get_inputs()[0].name: crop})[:2]
            found = keypoints_from_simcc(simcc_x, simcc_y, self.input_size, centre, scale)
            keypoints.append(found[0])
            scores.append(found[1])
        ordered, ordered_scores = openpose_order(np.stack(keypoints), np.stack(scores))
        return person_pose(ordered, ordered_scores, (bgr.shape[1], bgr.shape[0]))
