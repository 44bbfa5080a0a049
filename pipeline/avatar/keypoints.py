"""keypoints.json: the photo's 33 landmarks and the body's fitted keypoints, for people and debugging."""

from __future__ import annotations

import json

from pipeline.backends.protocols import PersonObservation
from pipeline.geometry import BodyFit

MEDIAPIPE_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)


def keypoints_json(person: PersonObservation, fit: BodyFit) -> bytes:
    """keypoints.json: the photo's 33 landmarks (px, visibility; world metres) and the body's fitted ones."""
    landmarks = {
        name: {"x": round(float(p[0]), 2), "y": round(float(p[1]), 2), "visibility": round(float(p[2]), 3),
               "world": [round(float(v), 4) for v in w]}
        for name, p, w in zip(MEDIAPIPE_NAMES, person.landmarks, person.world, strict=True)
    }
    fitted = {
        name: {"x": round(float(p[0]), 2), "y": round(float(p[1]), 2), "target_weight": round(float(t[2]), 3),
               "world": [round(float(v), 4) for v in k]}
        for name, p, t, k in zip(fit.keypoint_names, fit.keypoints_2d, fit.targets_2d, fit.keypoints_3d, strict=True)
    }
    return json.dumps({"schema_version": 1, "photo": landmarks, "fitted": fitted}, indent=1).encode()
