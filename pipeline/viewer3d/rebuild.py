"""The published mesh rebuilt from the views by a multi-view shape model (the `gpu` profile's MeshBuilder).

The fitted body (anny) is a body, not a dressed person: a loose garment, a skirt or hair have no geometry on it.
A multi-view shape model sees them in the views, so under the `gpu` profile phase 4 asks it for the surface:
1. `subject_masks`: each view's subject, the body's silhouette joined with every pixel that differs from the
   renderer's plain background (what the try-on painter added past the body);
2. `mesh_request`: the 000, 270, 180 and 090 views as RGBA, tagged front, left, back and right (`views.py`: 090
   shows the person's right side, 270 the left);
3. the model's mesh comes back in its own normalised frame; `place_shape` puts it in the body's world frame:
   the up axis is the mesh's longest extent (a standing person), either sign, and the front one of four turns
   about it; each of those 8 candidates is scaled to the body's height, centred on it, and scored by the
   silhouette IoU against the subject masks over the views; the best one wins;
4. `unwrap` gives the placed mesh a UV atlas (xatlas), and the phase bakes the views onto it as it does onto
   the body.
A mesh is declined, and the body kept, when the model finds no surface or the best placement's silhouette IoU
is under MIN_IOU (the shape does not match what the views show); the phase's data records which and why.
Silhouettes are rasterized at SILHOUETTE_SCALE of the views' resolution: 8 candidates x 8 views stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pipeline.backends.protocols import MeshBuilder, MeshRequest, ShapeMesh
from pipeline.geometry import Camera
from pipeline.render.raster import rasterize
from pipeline.render.shade import BACKGROUND

MV_ANGLES = {"front": "000", "left": "270", "back": "180", "right": "090"}  # request tag -> view angle
MESH_SEED = 0  # one seed per job: a repeated run rebuilds the same mesh
BACKGROUND_TOLERANCE = 24  # max channel difference from the plain background that still counts as background
MIN_IOU = 0.6  # a placed mesh whose silhouettes match the views less than this is declined
SILHOUETTE_SCALE = 0.25
YAW_TURNS = 4


@dataclass(frozen=True)
class Placement:
    vertices: np.ndarray  # (V, 3) float64, the body's world frame
    iou: float  # mean silhouette IoU over the views
    up_axis: str  # e.g. "+y": the model frame's axis that became world up
    yaw_deg: int  # the turn about up that faced it like the body


@dataclass(frozen=True)
class UvMesh:
    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int32
    uvs: np.ndarray  # (U, 2) float32
    face_uvs: np.ndarray  # (F, 3) int32 into uvs

    def parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.vertices, self.faces, self.uvs, self.face_uvs


@dataclass(frozen=True)
class Rebuilt:
    mesh: UvMesh | None  # None: declined, keep the body
    record: dict[str, object]  # what the phase data says about it


# ---- the request ---------------------------------------------------------------------------------------------


def subject_masks(views: dict[str, tuple[np.ndarray, Camera]], vertices: np.ndarray, faces: np.ndarray,
                  background: tuple[int, int, int] = BACKGROUND) -> dict[str, np.ndarray]:
    """Angle -> (H, W) bool: the body's silhouette in that view, or any pixel off the plain background."""
    masks = {}
    for angle, (image, camera) in views.items():
        body = rasterize(vertices, faces, camera).mask
        painted = np.abs(image.astype(np.int16) - np.asarray(background, np.int16)).max(axis=2) > BACKGROUND_TOLERANCE
        masks[angle] = _without_specks(body | painted)
    return masks


def _without_specks(mask: np.ndarray) -> np.ndarray:
    """`mask` less the connected pieces smaller than 1/200 of its largest (JPEG-like noise, stray pixels)."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.concatenate([[False], areas >= areas.max() / 200])
    return keep[labels]


def mesh_request(views: dict[str, tuple[np.ndarray, Camera]], masks: dict[str, np.ndarray],
                 seed: int = MESH_SEED) -> MeshRequest:
    """The four tagged views, RGBA with the subject mask as alpha."""
    missing = sorted(angle for angle in MV_ANGLES.values() if angle not in views)
    if missing:
        raise ValueError(f"the multi-view shape model needs the views {', '.join(missing)}")
    rgba = {tag: np.dstack([views[angle][0], np.where(masks[angle], 255, 0).astype(np.uint8)])
            for tag, angle in MV_ANGLES.items()}
    return MeshRequest(views=rgba, seed=seed)


# ---- placing the model's mesh in the body's frame -----------------------------------------------------------


def up_candidates(vertices: np.ndarray) -> list[tuple[str, int, np.ndarray]]:
    """(up axis, e.g. "+y"; turn in degrees; R) for each proper rotation taking the mesh's longest axis, either
    sign, to world +z, followed by each of YAW_TURNS turns about z."""
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    axis = int(np.argmax(extent))
    out = []
    for sign in (1, -1):
        up = np.zeros(3)
        up[axis] = sign
        # a right-handed frame (a, b, up) with a, b the other two axes
        a = np.zeros(3)
        a[(axis + 1) % 3] = 1
        b = np.cross(up, a)
        base = np.stack([a, b, up])  # rows: where each world axis comes from
        for turn in range(YAW_TURNS):
            yaw = turn * 360 // YAW_TURNS
            out.append((f"{'+-'[sign < 0]}{'xyz'[axis]}", yaw, _rotation_z(yaw) @ base))
    return out


def _rotation_z(angle_deg: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


def fit_to_body(vertices: np.ndarray, body_vertices: np.ndarray) -> np.ndarray:
    """`vertices` (already z-up) scaled to the body's height, its feet on the body's, centred over the body."""
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    body_low, body_high = body_vertices.min(axis=0), body_vertices.max(axis=0)
    scale = (body_high[2] - body_low[2]) / max(high[2] - low[2], 1e-9)
    centre, body_centre = (low + high) / 2, (body_low + body_high) / 2
    placed = (vertices - centre) * scale
    offset = np.array([body_centre[0], body_centre[1], body_low[2] - placed[:, 2].min()])
    return placed + offset


def silhouette_iou(vertices: np.ndarray, faces: np.ndarray, cameras: list[Camera], masks: list[np.ndarray],
                   scale: float = SILHOUETTE_SCALE) -> float:
    """Mean IoU of the mesh's silhouettes and `masks` over `cameras`, at `scale` of their resolution."""
    import cv2

    scores = []
    for camera, mask in zip(cameras, masks, strict=True):
        small = scaled_camera(camera, scale)
        drawn = rasterize(vertices, faces, small, cull_back=False).mask
        target = cv2.resize(mask.astype(np.float32), small.image_size, interpolation=cv2.INTER_AREA) >= 0.5
        union = np.count_nonzero(drawn | target)
        scores.append(np.count_nonzero(drawn & target) / union if union else 0.0)
    return float(np.mean(scores))


def scaled_camera(camera: Camera, scale: float) -> Camera:
    width, height = camera.image_size
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    sx, sy = size[0] / width, size[1] / height
    return replace(camera, focal_px=camera.focal_px * sx, cx=camera.cx * sx, cy=camera.cy * sy, image_size=size)


def place_shape(shape: ShapeMesh, body_vertices: np.ndarray, cameras: list[Camera],
                masks: list[np.ndarray]) -> Placement:
    """The model's mesh in the body's world frame, oriented and fitted as the silhouettes match best."""
    vertices = np.asarray(shape.vertices, dtype=np.float64)
    best: Placement | None = None
    for up, yaw, rotation in up_candidates(vertices):
        placed = fit_to_body(vertices @ rotation.T, np.asarray(body_vertices, dtype=np.float64))
        iou = silhouette_iou(placed, shape.faces, cameras, masks)
        if best is None or iou > best.iou:
            best = Placement(vertices=placed, iou=iou, up_axis=up, yaw_deg=yaw)
    assert best is not None
    return best


# ---- UVs -------------------------------------------------------------------------------------------------------


def unwrap(vertices: np.ndarray, faces: np.ndarray) -> UvMesh:
    """A UV atlas for the mesh (xatlas charts, packed into the unit square); vertices stay unsplit."""
    import xatlas

    mapping, indices, uvs = xatlas.parametrize(np.asarray(vertices, np.float32), np.asarray(faces, np.uint32))
    del mapping  # indices index uvs one to one; faces keep the original vertices
    return UvMesh(vertices=np.asarray(vertices, np.float64), faces=np.asarray(faces, np.int32),
                  uvs=np.asarray(uvs, np.float32), face_uvs=np.asarray(indices, np.int32))


# ---- the whole step ----------------------------------------------------------------------------------------------


def rebuild(builder: MeshBuilder, views: dict[str, tuple[np.ndarray, Camera]], body_vertices: np.ndarray,
            body_faces: np.ndarray) -> Rebuilt:
    """Ask `builder` for the dressed person's surface and place it; declined (mesh None) with the reason."""
    masks = subject_masks(views, body_vertices, body_faces)
    shape = builder.build_mesh(mesh_request(views, masks))
    record: dict[str, object] = {"builder": f"{builder.name} {builder.version}", "seed": MESH_SEED}
    if shape.empty:
        return Rebuilt(None, record | {"status": "declined", "why": "the model found no surface"})
    angles = list(views)
    placement = place_shape(shape, body_vertices, [views[a][1] for a in angles], [masks[a] for a in angles])
    record |= {"silhouette_iou": round(placement.iou, 4), "up_axis": placement.up_axis,
               "yaw_deg": placement.yaw_deg, "faces": int(len(shape.faces))}
    if placement.iou < MIN_IOU:
        return Rebuilt(None, record | {"status": "declined", "why": f"its silhouettes match the views at IoU "
                                                                    f"{placement.iou:.2f} < {MIN_IOU}"})
    return Rebuilt(unwrap(placement.vertices, shape.faces), record | {"status": "rebuilt"})

