"""Bytes in and out for the model phases: decode photos, encode masks, meshes and arrays. Plain numpy + PIL."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from pipeline.backends.protocols import BodyFit, Camera, PersonObservation


def decode_rgb(data: bytes) -> np.ndarray:
    """An uploaded photo as (H, W, 3) uint8 RGB, upright (EXIF orientation applied, as a viewer shows it)."""
    with Image.open(io.BytesIO(data)) as image:
        upright = ImageOps.exif_transpose(image)
        return np.asarray(upright.convert("RGB"), dtype=np.uint8).copy()


def jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_mask(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def load_npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data)) as archive:
        return {name: archive[name] for name in archive.files}


def body_arrays(fit: BodyFit) -> dict[str, np.ndarray]:
    """Everything a later phase needs to re-use the fitted body without re-fitting it."""
    arrays = {
        "vertices": fit.vertices.astype(np.float32),
        "faces": fit.faces.astype(np.int32),
        "rest_vertices": fit.rest_vertices.astype(np.float32),
        "keypoints_3d": fit.keypoints_3d.astype(np.float32),
        "keypoints_2d": fit.keypoints_2d.astype(np.float32),
        "targets_2d": fit.targets_2d.astype(np.float32),
    }
    if fit.uvs is not None and fit.face_uvs is not None:
        arrays |= {"uvs": fit.uvs.astype(np.float32), "face_uvs": fit.face_uvs.astype(np.int32)}
    return arrays


def camera_dict(camera: Camera) -> dict[str, Any]:
    return {
        "focal_px": float(camera.focal_px),
        "cx": float(camera.cx),
        "cy": float(camera.cy),
        "rotation": [[float(v) for v in row] for row in camera.rotation],
        "translation": [float(v) for v in camera.translation],
        "image_size": list(camera.image_size),
    }


def camera_from_dict(data: dict[str, Any]) -> Camera:
    return Camera(
        focal_px=float(data["focal_px"]), cx=float(data["cx"]), cy=float(data["cy"]),
        rotation=np.asarray(data["rotation"], dtype=np.float64), translation=np.asarray(data["translation"]),
        image_size=(int(data["image_size"][0]), int(data["image_size"][1])),
    )


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


def glb(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """A plain (untextured) GLB of a mesh: anny's z-up turned to glTF's y-up, facing +z as viewers expect."""
    import trimesh

    to_gltf = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float64)  # x, y, z <- x, z, -y
    mesh = trimesh.Trimesh(vertices=np.asarray(vertices, np.float64) @ to_gltf.T, faces=faces, process=False)
    return mesh.export(file_type="glb")
