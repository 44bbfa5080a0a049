"""The core value types every phase shares: the camera and the body's meshes, and their files.

Conventions:
- the body's world frame is anny's: metres, z up, the person faces -y, the person's left is +x;
- a `Camera` maps world points to pixels: x_cam = R @ x_world + t, then u = f * x/z + cx, v = f * y/z + cy
  (the camera looks along +z of its own frame, image y down); pixel (x, y) has its origin at the top-left.

The avatar phase writes a `PosedBody` (body.npz) and its `Camera` (camera.json); fitting reads them back with
`PosedBody.from_npz` and `Camera.from_json` and writes the dressed `BodyMesh` (dressed.npz), which viewer3d reads
the same way. One codec, typed records: no phase decodes another's arrays by hand.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict


class CameraRecord(BaseModel):
    """camera.json (and each view's camera in views.json)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    focal_px: float
    cx: float
    cy: float
    rotation: tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]
    translation: tuple[float, float, float]
    image_size: tuple[int, int]


@dataclass(frozen=True)
class Camera:
    focal_px: float
    cx: float
    cy: float
    rotation: np.ndarray  # (3, 3) world -> camera
    translation: np.ndarray  # (3,)
    image_size: tuple[int, int]  # (width, height)

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 2) pixels."""
        cam = points @ np.asarray(self.rotation).T + np.asarray(self.translation)
        z = np.clip(cam[:, 2:3], 1e-6, None)
        return np.concatenate([self.focal_px * cam[:, :1] / z + self.cx, self.focal_px * cam[:, 1:2] / z + self.cy], 1)

    def record(self) -> CameraRecord:
        r = np.asarray(self.rotation, dtype=np.float64)
        t = np.asarray(self.translation, dtype=np.float64)
        return CameraRecord(
            focal_px=float(self.focal_px), cx=float(self.cx), cy=float(self.cy),
            rotation=tuple(tuple(float(v) for v in row) for row in r),  # type: ignore[arg-type]
            translation=(float(t[0]), float(t[1]), float(t[2])),
            image_size=(int(self.image_size[0]), int(self.image_size[1])),
        )

    def to_dict(self) -> dict[str, Any]:
        return self.record().model_dump(exclude={"schema_version"})

    def to_json(self) -> bytes:
        return self.record().model_dump_json(indent=2).encode()

    @classmethod
    def from_record(cls, record: CameraRecord) -> Camera:
        return cls(focal_px=record.focal_px, cx=record.cx, cy=record.cy,
                   rotation=np.asarray(record.rotation, dtype=np.float64),
                   translation=np.asarray(record.translation, dtype=np.float64), image_size=record.image_size)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Camera:
        return cls.from_record(CameraRecord.model_validate(data))

    @classmethod
    def from_json(cls, data: bytes) -> Camera:
        return cls.from_record(CameraRecord.model_validate_json(data))


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _load_npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data)) as archive:
        return {name: archive[name] for name in archive.files}


_INT_ARRAYS = ("faces", "face_uvs")


@dataclass(frozen=True)
class BodyMesh:
    """A textured mesh in the world frame: anny's topology and UVs (v up), as phases pass it on."""

    vertices: np.ndarray  # (V, 3) float32, metres
    faces: np.ndarray  # (F, 3) int32
    uvs: np.ndarray  # (V', 2) float32 texture coordinates
    face_uvs: np.ndarray  # (F, 3) int32 indices into `uvs`

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: np.asarray(getattr(self, f.name), np.int32 if f.name in _INT_ARRAYS else np.float32)
                for f in fields(self)}

    def to_npz(self) -> bytes:
        return _npz(self.arrays())

    @classmethod
    def from_npz(cls, data: bytes) -> Self:
        arrays = _load_npz(data)
        return cls(**{f.name: arrays[f.name] for f in fields(cls)})

    def mesh(self) -> BodyMesh:
        """Only the mesh (a `PosedBody` without its keypoints)."""
        return BodyMesh(self.vertices, self.faces, self.uvs, self.face_uvs)


@dataclass(frozen=True)
class PosedBody(BodyMesh):
    """body.npz: the fitted body as the avatar phase leaves it for fitting (no re-fit needed)."""

    rest_vertices: np.ndarray  # (V, 3) the same body in its rest pose, for measuring and body parts
    keypoints_3d: np.ndarray  # (K, 3) world
    keypoints_2d: np.ndarray  # (K, 2) the fitted keypoints in the photo
    targets_2d: np.ndarray  # (K, 3) what they were fitted to: x px, y px, weight


@dataclass(frozen=True)
class BodyFit:
    """The fitted body: the posed mesh in world coordinates and the camera that sees it as the photo does."""

    vertices: np.ndarray  # (V, 3) float32, metres, world frame
    faces: np.ndarray  # (F, 3) int32
    camera: Camera
    keypoint_names: tuple[str, ...]  # the body model's keypoints (COCO order for anny)
    keypoints_3d: np.ndarray  # (K, 3) world
    keypoints_2d: np.ndarray  # (K, 2) the fitted keypoints projected into the photo
    targets_2d: np.ndarray  # (K, 3) what they were fitted to: x px, y px, weight (0 = not used)
    rest_vertices: np.ndarray  # (V, 3) the same body (shape, scale) in its rest pose, for measuring
    params: dict[str, list[float]] = field(default_factory=dict)  # pose / shape parameters, to re-pose later
    iterations: int = 0
    uvs: np.ndarray | None = None  # (V', 2) texture coordinates when the model has them
    face_uvs: np.ndarray | None = None  # (F, 3) indices into `uvs`

    def posed_body(self) -> PosedBody:
        if self.uvs is None or self.face_uvs is None:
            raise ValueError("the body model gave no UVs: a posed body needs them to be dressed")
        return PosedBody(self.vertices, self.faces, self.uvs, self.face_uvs, self.rest_vertices, self.keypoints_3d,
                         self.keypoints_2d, self.targets_2d)


def views_json(views: list[tuple[int, Camera]], lighting: dict[str, Any], *, from_atlas: bool = False) -> bytes:
    """views.json: each rendered angle's camera, the light it was rendered with, and whether the angles are
    the renders of atlas.png as they are (`from_atlas`; false once a model repainted or refined them)."""
    record = {"schema_version": 1, "lighting": lighting, "from_atlas": from_atlas,
              "views": [{"angle_deg": angle, "camera": camera.to_dict()} for angle, camera in views]}
    return json.dumps(record, indent=2).encode()


def read_views_json(data: bytes) -> tuple[list[tuple[int, Camera]], dict[str, Any], bool]:
    """(angle, camera) pairs, the light, and whether the angles are atlas.png's plain renders (False when the
    record does not say)."""
    record = json.loads(data)
    views = [(int(v["angle_deg"]), Camera.from_dict(v["camera"])) for v in record["views"]]
    return views, dict(record["lighting"]), bool(record.get("from_atlas", False))
