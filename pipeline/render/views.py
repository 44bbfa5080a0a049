"""The 8 turntable views: the photo's camera, with the body turned about the vertical axis through its centre.

Turning the body by `a` about world z through `centre` and keeping the camera is the same as keeping the body
and moving the camera: R' = R Rz(a), t' = t + R c - R Rz(a) c. Distance to the centre, focal length, principal
point and image size are unchanged, so every view keeps the photo's framing; angle 0 is exactly the input
camera. Positive angles turn the body counter-clockwise seen from above (right-handed about +z): the person,
who faces -y, faces +x at 090, so 090 shows the person's right side and 270 the left; 180 shows the back.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from pipeline.geometry import Camera
from pipeline.render.raster import rasterize
from pipeline.render.shade import Lighting, Surface, shade

ANGLES_DEG = (0, 45, 90, 135, 180, 225, 270, 315)


@dataclass(frozen=True)
class View:
    """One rendered angle."""

    angle_deg: int
    camera: Camera
    image: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) bool: pixels that see the body
    seconds: float  # rasterize + shade


def rotation_z(angle_deg: float) -> np.ndarray:
    """(3, 3) right-handed rotation about world +z (the vertical)."""
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def body_centre(vertices: np.ndarray) -> np.ndarray:
    """(3,) the turning centre: the middle of the body's bounding box (only its x, y matter to a turn about z)."""
    v = np.asarray(vertices, dtype=np.float64)
    return (v.min(axis=0) + v.max(axis=0)) / 2


def orbit_camera(camera: Camera, centre: np.ndarray, angle_deg: float) -> Camera:
    """The camera that sees the body turned by `angle_deg` about the vertical through `centre` as `camera` would."""
    if angle_deg % 360 == 0:
        return camera
    rot = np.asarray(camera.rotation, dtype=np.float64)
    c = np.asarray(centre, dtype=np.float64)
    turned = rot @ rotation_z(angle_deg)
    translation = np.asarray(camera.translation, dtype=np.float64) + rot @ c - turned @ c
    return replace(camera, rotation=turned, translation=translation)


def orbit_cameras(camera: Camera, centre: np.ndarray, angles_deg: tuple[int, ...] = ANGLES_DEG) -> list[Camera]:
    """One camera per angle, all at the input camera's distance from `centre` and with its framing."""
    return [orbit_camera(camera, centre, angle) for angle in angles_deg]


FRAME_MARGIN = 0.06  # of the image's height and width, kept free round the figure on every side
RENDER_THREADS = 2  # views rendered at once: torch and numpy release the GIL, and each view is computed alone, so
# the bytes are the same; on a machine whose other cores are busy (a catalog) it costs nothing measurable
TURNTABLE_DISTANCE = 5.0  # camera distance in half-heights of the figure (a ~4.5 m lens-to-person for 1.8 m) ...
TURNTABLE_FARTHER = (6.0, 7.0, 8.5, 10.0, 12.0, 14.5, 17.5, 21.0, 25.0, 30.0)  # ... or the first of these that
TURNTABLE_SPREAD = 0.035  # keeps the figure's projected height within this share across the 8 angles: a crouch, a
# lunge or a seated person reaching towards the camera looks taller where its near parts face it (perspective; seen
# orthographically a turn about the vertical keeps a figure's height exactly), and a longer lens flattens that


def level_rotation(camera: Camera) -> np.ndarray:
    """(3, 3) world -> camera of a level camera looking the way `camera` looks, seen from above (no tilt, no roll):
    the 000 view keeps the photo's direction."""
    forward = np.asarray(camera.rotation, dtype=np.float64)[2].copy()
    forward[2] = 0.0
    norm = float(np.linalg.norm(forward))
    forward = forward / norm if norm > 1e-6 else np.array([0.0, 1.0, 0.0])
    up = np.array([0.0, 0.0, 1.0])
    right = np.cross(forward, up)
    return np.stack([right, -up, forward])


@dataclass(frozen=True)
class Turntable:
    """One camera and one turning centre for all 8 angles: the same distance and look-at point at every angle."""

    camera: Camera  # the 000 view's camera: level, in front of the person
    centre: np.ndarray  # (3,) the vertical the body turns about passes through it
    distance_hh: float = TURNTABLE_DISTANCE  # the camera's distance beyond the turning radius, in half-heights


def visible_vertices(vertices: np.ndarray, camera: Camera, slack: float = 0.02) -> np.ndarray:
    """(V,) bool: the vertices the photo's frame holds (a photo cut at the hip shows no legs to frame)."""
    xy = camera.project(np.asarray(vertices, dtype=np.float64))
    width, height = camera.image_size
    sx, sy = slack * width, slack * height
    inside = (xy[:, 0] >= -sx) & (xy[:, 0] <= width + sx) & (xy[:, 1] >= -sy) & (xy[:, 1] <= height + sy)
    return inside if inside.sum() >= 50 else np.ones(len(vertices), dtype=bool)


def turntable(photo_camera: Camera, vertices: np.ndarray, margin: float = FRAME_MARGIN) -> Turntable:
    """The turntable that frames the visible figure whole at every angle, at one scale whatever the person's size
    in the photo: a level camera at the photo's image size, looking at the middle of the visible body, with the
    focal length that fits the body's full turning radius and height inside the margins, from `TURNTABLE_DISTANCE`
    half-heights away, or farther (`TURNTABLE_FARTHER`) where the figure's height would change by more than
    `TURNTABLE_SPREAD` as it turns. A standing person keeps the near camera (and the face its perspective); the
    distance is the figure's own, the same at all 8 angles."""
    visible = np.asarray(vertices, dtype=np.float64)[visible_vertices(vertices, photo_camera)]
    near = turntable_at(photo_camera, visible, TURNTABLE_DISTANCE, margin)
    if height_spread(near, vertices) <= TURNTABLE_SPREAD:
        return near
    low, high = 0, len(TURNTABLE_FARTHER) - 1  # the spread falls as the camera moves back: the first that fits
    while low < high:
        middle = (low + high) // 2
        fits = height_spread(turntable_at(photo_camera, visible, TURNTABLE_FARTHER[middle], margin), vertices)
        low, high = (low, middle) if fits <= TURNTABLE_SPREAD else (middle + 1, high)
    return turntable_at(photo_camera, visible, TURNTABLE_FARTHER[low], margin)


def turntable_at(photo_camera: Camera, visible: np.ndarray, distance_hh: float, margin: float = FRAME_MARGIN
                 ) -> Turntable:
    """The turntable of the `visible` vertices (those the photo's frame holds, `visible_vertices`) with its camera
    `distance_hh` of the figure's half-heights (or turning radii, the larger) beyond the figure's turning radius
    from the middle of the visible body (see `turntable`)."""
    v = np.asarray(visible, dtype=np.float64)
    low, high = v.min(axis=0), v.max(axis=0)
    centre = (low + high) / 2
    radius = float(np.sqrt(((v[:, :2] - centre[:2]) ** 2).sum(axis=1)).max())
    half_height = float(high[2] - low[2]) / 2
    width, height = photo_camera.image_size
    usable_h, usable_w = (0.5 - margin) * height, (0.5 - margin) * width
    distance = radius + distance_hh * max(half_height, radius)  # far enough that turning barely rescales
    f = min(usable_h * (distance - radius) / max(half_height, 1e-6), usable_w * (distance - radius) / max(radius, 1e-6))
    rotation = level_rotation(photo_camera)
    position = centre - rotation[2] * distance
    camera = Camera(focal_px=f, cx=width / 2, cy=height / 2, rotation=rotation, translation=-rotation @ position,
                    image_size=(width, height))
    return Turntable(camera, centre, distance_hh)


def height_spread(table: Turntable, vertices: np.ndarray) -> float:
    """The spread of the figure's projected height across the 8 angles (max - min over the mean; its vertices' extent
    inside the frame, as the rendered silhouette's would be): what the turntable's perspective does to its scale."""
    v = np.asarray(vertices, dtype=np.float64)
    heights = []
    for camera in orbit_cameras(table.camera, table.centre):
        rows = np.clip(camera.project(v)[:, 1], 0.0, float(camera.image_size[1]))
        heights.append(float(rows.max() - rows.min()))
    return float(np.ptp(heights) / max(float(np.mean(heights)), 1e-6))


def camera_position(camera: Camera) -> np.ndarray:
    """(3,) the camera's centre in the world frame."""
    return -np.asarray(camera.rotation).T @ np.asarray(camera.translation)


def render_view(surface: Surface, camera: Camera, lighting: Lighting | None = None, threads: int | None = 1) -> View:
    """Rasterize and shade `surface` as `camera` sees it (angle 0 in the returned `View`)."""
    start = time.perf_counter()
    raster = rasterize(surface.vertices, surface.faces, camera, threads=threads)
    image = shade(raster, surface, camera, lighting)
    return View(angle_deg=0, camera=camera, image=image, mask=raster.mask, seconds=time.perf_counter() - start)


def render_views(
    surface: Surface, camera: Camera, centre: np.ndarray | None = None, angles_deg: tuple[int, ...] = ANGLES_DEG,
    lighting: Lighting | None = None, threads: int | None = 1,
) -> list[View]:
    """The turntable at the input camera's resolution; `centre` defaults to the body's bounding-box centre."""
    centre = body_centre(surface.vertices) if centre is None else centre
    cameras = orbit_cameras(camera, centre, angles_deg)
    with ThreadPoolExecutor(RENDER_THREADS, thread_name_prefix="dropfit-render") as pool:
        rendered = list(pool.map(lambda cam: render_view(surface, cam, lighting, threads), cameras))
    return [replace(view, angle_deg=angle) for angle, view in zip(angles_deg, rendered, strict=True)]


def contact_sheet(views: list[View], columns: int = 4, scale: float = 0.5) -> np.ndarray:
    """(H', W', 3) uint8: the views in a grid, each scaled by `scale`, in the order given."""
    import cv2

    tiles = [cv2.resize(v.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for v in views]
    height, width = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * height, columns * width, 3), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * height:(r + 1) * height, c * width:(c + 1) * width] = tile
    return sheet
