"""Dress the fitted body: the garment's texture on the region its category covers, pushed out by the ease, and
the person's own appearance (projected from the photo) everywhere else, on one texture atlas in anny's UVs.

1. Region (`pipeline.fitting.regions`): soft per-vertex garment weights from the rest pose's body parts.
2. Ease: garment vertices move out along their normals by ease / (2 pi) (a girth's extra length spread evenly
   round it), capped at `MAX_OFFSET_CM`, weighted by the soft region so the offset fades at the garment's edges.
3. Atlas: the UV layout is rasterized at S x S (the software rasterizer with a flat camera); every texel gets
   its 3D point on the posed body. Texels seen in the photo (camera depth within `VISIBLE_TOLERANCE_M` of the
   body's z-buffer, facing the camera, inside the person mask) take the photo's colour. Texels not seen take the
   photo at their point mirrored through the body's coronal plane when that pixel shows the same body part
   (backs of the torso, legs and arms); unseen head texels take the hair colour (the median seen head colour
   above the eyes); what is left takes the nearest known texel's colour (distance transform), softened.
4. Garment: front-facing garment texels take the cutout, its mask box mapped onto the region's box as the photo's
   camera sees it; the rest (back, sides, where the cutout is empty) a mirrored-repeat tile of the plain fabric
   crop (texture.png), placed by the texel's world position. Never a hole.

cv2 and the rasterizer (torch) are imported inside functions only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.backends.protocols import Camera
from pipeline.fitting import regions
from pipeline.render.shade import vertex_normals

MAX_OFFSET_CM = 4.0
VISIBLE_TOLERANCE_M = 0.02
MIN_FACING = 0.15  # cosine between the normal and the direction to the camera for a texel to count as seen
FRONT_FACING = 0.3  # the cutout goes on texels facing the camera at least this much (cosine); the tile elsewhere
MASK_ERODE = 1 / 256  # of the image height: the person mask is shrunk so its soft edge lends no background
TILE_M = 0.22  # the fabric tile's side on the body, metres
_HEAD = regions.PARTS.index("head")


@dataclass(frozen=True)
class DressedBody:
    """The dressed mesh and its texture atlas (anny's UVs, v up as `sample_texture` expects)."""

    vertices: np.ndarray  # (V, 3) float32: the garment region pushed out by the ease
    atlas: np.ndarray  # (S, S, 3) uint8
    garment_texels: np.ndarray  # (S, S) bool
    garment_vertices: np.ndarray  # (V,) bool
    coverage: float  # share of the garment region's texels coloured from the garment
    front_coverage: float  # share of the garment texels facing the photo's camera that took the cutout itself
    seen: float  # share of the body's texels whose colour the photo shows directly


@dataclass(frozen=True)
class Texels:
    """The covered texels of the atlas: flat indices, 3D points, normals, part labels, garment weights."""

    index: np.ndarray  # (N,) flat index into S * S
    points: np.ndarray  # (N, 3) posed world points
    normals: np.ndarray  # (N, 3) unit
    part: np.ndarray  # (N,) int
    garment: np.ndarray  # (N,) float weight


def uv_camera(size: int) -> Camera:
    """A camera that maps (x, y, 1) to pixel (x, y): for rasterizing the UV layout."""
    return Camera(focal_px=1.0, cx=0.0, cy=0.0, rotation=np.eye(3), translation=np.zeros(3), image_size=(size, size))


def atlas_texels(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, face_uvs: np.ndarray, size: int,
                 part: np.ndarray, weight: np.ndarray) -> Texels:
    """Rasterize the UV layout (row 0 = v 1) and interpolate the body's attributes at every covered texel."""
    from pipeline.render.raster import rasterize

    flat = np.column_stack([uvs[:, 0] * size, (1.0 - uvs[:, 1]) * size, np.ones(len(uvs))])
    raster = rasterize(flat, face_uvs, uv_camera(size), cull_back=False)
    index = np.flatnonzero(raster.triangle >= 0)
    tri = raster.triangle.reshape(-1)[index]
    bary = raster.bary.reshape(-1, 3)[index].astype(np.float64)
    corners = np.asarray(faces, dtype=np.int64)[tri]
    points = np.einsum("nk,nkc->nc", bary, np.asarray(vertices, np.float64)[corners])
    normals = np.einsum("nk,nkc->nc", bary, vertex_normals(vertices, faces)[corners])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    nearest = corners[np.arange(len(tri)), bary.argmax(axis=1)]
    garment = np.einsum("nk,nk->n", bary, weight[corners])
    return Texels(index, points, normals, part[nearest], garment)


def project(camera: Camera, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) pixels and (N,) camera depths of world points."""
    cam = points @ np.asarray(camera.rotation).T + np.asarray(camera.translation)
    z = np.clip(cam[:, 2], 1e-6, None)
    f = camera.focal_px
    return np.column_stack([f * cam[:, 0] / z + camera.cx, f * cam[:, 1] / z + camera.cy]), z


def sample_image(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(N, C) float bilinear samples of an (H, W, C) image at (N, 2) pixel coordinates (pixel centres at i + 0.5)."""
    import cv2

    n, width = len(xy), 1024  # remap's maps must stay under 32767 rows
    padded = np.zeros((-(-n // width) * width, 2), dtype=np.float32)
    padded[:n] = xy - 0.5
    out = cv2.remap(image, padded.reshape(-1, width, 2), None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(len(padded), -1)[:n].astype(np.float32)


def pixel_lookup(grid: np.ndarray, xy: np.ndarray, fill: float | int) -> np.ndarray:
    """(N,) values of an (H, W) grid at the pixels containing `xy` (`fill` outside)."""
    h, w = grid.shape
    ix, iy = np.floor(xy[:, 0]).astype(np.int64), np.floor(xy[:, 1]).astype(np.int64)
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    out = np.full(len(xy), fill, dtype=grid.dtype)
    out[inside] = grid[iy[inside], ix[inside]]
    return out


def seen_in_photo(tex: Texels, camera: Camera, depth: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) bool: texels the photo shows (depth test, facing, in the person mask), and their (N, 2) pixels."""
    xy, z = project(camera, tex.points)
    centre = -np.asarray(camera.rotation).T @ np.asarray(camera.translation)
    towards = centre - tex.points
    facing = np.einsum("nc,nc->n", tex.normals, towards) / np.linalg.norm(towards, axis=1)
    visible = np.abs(pixel_lookup(depth, xy, np.inf) - z) < VISIBLE_TOLERANCE_M
    return visible & (facing > MIN_FACING) & (pixel_lookup(mask, xy, 0.0) > 0.5), xy


def person_colours(tex: Texels, camera: Camera, photo: np.ndarray, mask: np.ndarray, body_raster, face_part: np.ndarray,
                   eye_level: float | None) -> tuple[np.ndarray, np.ndarray, float]:
    """(N, 3) colours from the photo and (N,) bool known: seen texels, mirrored backs, hair on the back of the head;
    plus the share seen directly."""
    colour = np.zeros((len(tex.index), 3), dtype=np.float32)
    seen, xy = seen_in_photo(tex, camera, body_raster.depth, mask)
    colour[seen] = sample_image(photo, xy[seen])
    known = seen.copy()
    mirrored = tex.points.copy()
    mirrored[:, 1] = 2 * np.median(tex.points[:, 1]) - mirrored[:, 1]
    mxy, _ = project(camera, mirrored)
    pixel_part = np.where(body_raster.triangle >= 0, face_part[np.maximum(body_raster.triangle, 0)], -1)
    same = (pixel_lookup(pixel_part, mxy, -1) == tex.part) & (pixel_lookup(mask, mxy, 0.0) > 0.5)
    back = ~known & same & (tex.part != _HEAD)
    colour[back] = sample_image(photo, mxy[back])
    known |= back
    head = tex.part == _HEAD
    hair = head & seen & (tex.points[:, 2] > (eye_level if eye_level is not None else np.inf))
    if hair.sum() >= 20:
        fill = head & ~known & (tex.points[:, 2] > np.percentile(tex.points[head, 2], 15))
        colour[fill] = np.median(colour[hair], axis=0)
        known |= fill
    return colour, known, float(seen.mean()) if len(seen) else 0.0


def fabric_tile(garment_rgba: np.ndarray, texture: np.ndarray | None) -> np.ndarray:
    """(h, w, 3) uint8 plain fabric: texture.png when given, else the cutout's dominant colour as a flat tile."""
    if texture is not None and texture.size:
        return np.ascontiguousarray(texture[..., :3])
    opaque = garment_rgba[..., 3] > 127
    dominant = np.median(garment_rgba[opaque][:, :3], axis=0) if opaque.any() else np.array([128, 128, 128])
    return np.broadcast_to(dominant.astype(np.uint8), (8, 8, 3)).copy()


def tile_colours(tex: Texels, tile: np.ndarray) -> np.ndarray:
    """(N, 3) fabric colours: the tile mirror-repeated over the body, placed by the texel's (x or y, z)."""
    across = np.where(np.abs(tex.normals[:, 0]) > np.abs(tex.normals[:, 1]), tex.points[:, 1], tex.points[:, 0])
    coords = np.column_stack([across, -tex.points[:, 2]]) / TILE_M
    folded = np.abs((coords % 2.0) - 1.0)  # mirrored repeat: seamless for any tile
    h, w = tile.shape[:2]
    return sample_image(tile, folded * np.array([w, h]))


def garment_colours(tex: Texels, camera: Camera, garment_rgba: np.ndarray, tile: np.ndarray,
                    region_box: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) garment colours for every texel and (N,) bool: took the cutout (front, inside its mask)."""
    colour = tile_colours(tex, tile)
    opaque = garment_rgba[..., 3] > 127
    if not opaque.any():
        return colour, np.zeros(len(colour), dtype=bool)
    rows, cols = np.nonzero(opaque)
    gx0, gy0, gx1, gy1 = cols.min(), rows.min(), cols.max() + 1, rows.max() + 1
    x0, y0, x1, y1 = region_box
    xy, _ = project(camera, tex.points)
    gxy = np.column_stack([gx0 + (xy[:, 0] - x0) / max(x1 - x0, 1e-6) * (gx1 - gx0),
                           gy0 + (xy[:, 1] - y0) / max(y1 - y0, 1e-6) * (gy1 - gy0)])
    centre = -np.asarray(camera.rotation).T @ np.asarray(camera.translation)
    towards = centre - tex.points
    front = np.einsum("nc,nc->n", tex.normals, towards) > FRONT_FACING * np.linalg.norm(towards, axis=1)
    sampled = sample_image(np.ascontiguousarray(garment_rgba), gxy)
    took = front & (sampled[:, 3] > 127)
    colour[took] = sampled[took, :3]
    return colour, took


def fill_unknown(atlas: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Every unknown texel takes the nearest known texel's colour; the filled area is then softened."""
    import cv2

    if known.all() or not known.any():
        return atlas
    distance, labels = cv2.distanceTransformWithLabels((~known).astype(np.uint8), cv2.DIST_L2, 5,
                                                       labelType=cv2.DIST_LABEL_PIXEL)
    rows, cols = np.nonzero(known)
    order = np.zeros(labels.max() + 1, dtype=np.int64)
    order[labels[rows, cols]] = np.arange(len(rows))
    filled = atlas.copy()
    unknown = ~known
    nearest = order[labels[unknown]]
    filled[unknown] = atlas[rows[nearest], cols[nearest]]
    far = distance > 3  # soften deep fills only: texels next to an island keep its colour (no seam lines)
    soft = cv2.blur(filled, (7, 7))
    filled[far] = soft[far]
    return filled


def ease_offsets(parts: regions.BodyParts, weight: np.ndarray, ease_cm_by_region: dict[str, float]) -> np.ndarray:
    """(V,) metres: ease / (2 pi), clipped to [0, MAX_OFFSET_CM], times the soft garment weight."""
    ease = regions.ease_per_vertex(parts, ease_cm_by_region)
    return np.clip(ease / (2 * np.pi), 0.0, MAX_OFFSET_CM) / 100.0 * weight


def region_box(vertices: np.ndarray, garment: np.ndarray, camera: Camera) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) pixel box of the garment region as the photo's camera sees it."""
    points = np.asarray(vertices, dtype=np.float64)[garment] if garment.any() else np.asarray(vertices, np.float64)
    xy, _ = project(camera, points)
    return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())


def _photo_inputs(photo_rgb: np.ndarray, person_mask: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """The photo and a float mask at the camera's image size."""
    import cv2

    width, height = camera.image_size
    photo = np.ascontiguousarray(photo_rgb[..., :3], dtype=np.uint8)
    mask = np.asarray(person_mask, dtype=np.float32)
    if mask.max() > 1.0:
        mask = mask / 255.0
    if photo.shape[:2] != (height, width):
        photo = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
    if mask.shape != (height, width):
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
    radius = max(1, round(height * MASK_ERODE))
    mask = cv2.erode(mask, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8))
    return photo, mask


def dress_body(
    vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, face_uvs: np.ndarray, camera: Camera,
    photo_rgb: np.ndarray, person_mask: np.ndarray, garment_rgba: np.ndarray, garment_category: str,
    ease_cm_by_region: dict[str, float], *, atlas_size: int = 1024, keypoints_3d: np.ndarray | None = None,
    rest_vertices: np.ndarray | None = None, garment_texture: np.ndarray | None = None,
) -> DressedBody:
    """Put the garment on the posed body (see the module docstring). `keypoints_3d` (COCO-23, posed world) and
    `rest_vertices` sharpen the region (arms told from torso); `garment_texture` is texture.png (plain fabric)."""
    from pipeline.render.raster import rasterize

    vertices = np.asarray(vertices, dtype=np.float64)
    rest = vertices if rest_vertices is None else np.asarray(rest_vertices, dtype=np.float64)
    rest_kp = None if keypoints_3d is None else regions.rest_keypoints(vertices, rest, keypoints_3d)
    parts = regions.body_parts(rest, rest_kp)
    weight = regions.garment_weights(parts, faces, garment_category)
    tex = atlas_texels(vertices, faces, uvs, face_uvs, atlas_size, parts.label, weight)
    photo, mask = _photo_inputs(photo_rgb, person_mask, camera)
    body_raster = rasterize(vertices, faces, camera)
    face_part = parts.label[np.asarray(faces)[:, 0]]
    colour, known, seen = person_colours(tex, camera, photo, mask, body_raster, face_part, parts.levels.get("eye"))
    garment_vertices = weight > 0.5
    on_garment = tex.garment > 0.5
    tile = fabric_tile(np.asarray(garment_rgba), garment_texture)
    g_colour, took = garment_colours(tex, camera, np.asarray(garment_rgba), tile,
                                     region_box(vertices, garment_vertices, camera))
    colour[on_garment] = g_colour[on_garment]
    known |= on_garment
    atlas, known_grid, garment_grid = _assemble(tex, colour, known, on_garment, atlas_size)
    offsets = ease_offsets(parts, weight, ease_cm_by_region)
    dressed = vertices + vertex_normals(vertices, faces) * offsets[:, None]
    front = on_garment & _facing(tex, camera)
    return DressedBody(
        vertices=dressed.astype(np.float32), atlas=fill_unknown(atlas, known_grid), garment_texels=garment_grid,
        garment_vertices=garment_vertices, coverage=float(on_garment.any() and (garment_rgba[..., 3] > 127).any()),
        front_coverage=float(took[front].mean()) if front.any() else 0.0, seen=seen,
    )


def _facing(tex: Texels, camera: Camera) -> np.ndarray:
    """(N,) bool: texels whose normal points towards the camera."""
    centre = -np.asarray(camera.rotation).T @ np.asarray(camera.translation)
    return np.einsum("nc,nc->n", tex.normals, centre - tex.points) > 0


def _assemble(tex: Texels, colour: np.ndarray, known: np.ndarray, on_garment: np.ndarray,
              size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (S, S, 3) uint8 atlas, its known texels and its garment texels, from the per-texel arrays."""
    atlas = np.zeros((size * size, 3), dtype=np.uint8)
    atlas[tex.index] = np.clip(colour + 0.5, 0, 255).astype(np.uint8)
    known_grid = np.zeros(size * size, dtype=bool)
    known_grid[tex.index[known]] = True
    garment_grid = np.zeros(size * size, dtype=bool)
    garment_grid[tex.index[on_garment]] = True
    return atlas.reshape(size, size, 3), known_grid.reshape(size, size), garment_grid.reshape(size, size)
