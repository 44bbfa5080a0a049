"""The texture of the published GLB: the rendered views back-projected onto the mesh's UV atlas.

Every texel of the UV layout (the 3D point and smooth normal of the UV triangle's surface under its centre)
takes colour from the views that see it:
- seen: its camera depth is within DEPTH_TOLERANCE_M (plus one pixel's worth of its slope) of the view's
  z-buffer, and it is not on a depth edge (the silhouette, an arm's outline over the torso), where a bilinear
  sample would mix in the background or the occluder; from an occlusion contour the weight rises over
  FEATHER of the image height, so a seam where a view loses sight of a surface blends instead of cutting;
- weight: ((cos - MIN_FACING) / (1 - MIN_FACING)) ** FACING_POWER, cos between the normal and the direction
  to the camera: zero at grazing angles, where a view smears few pixels over many texels;
- colour: the view sampled bilinearly at the texel's projection and divided by that view's own shading
  (ambient + diffuse * max(0, n.l), the light fixed in the camera frame as `pipeline.render.shade.lambert`
  applies it), so the atlas is albedo and a glTF viewer's light does not shade the body a second time.
Only the BEST_VIEWS best-facing views blend: each weight less that of the best view left out (a continuous
function of the weights, so the blend has no step where two views swap rank), then normalised. Texels that no view sees
well (under the arms, the soles, the top of the head) fade into `fallback_atlas` (phase 3's dressing atlas),
or without one the nearest well-seen texel. Last, the atlas is filled past its UV islands, so the texels a
viewer's bilinear and mip-mapped lookups reach outside an island hold its colour, not black.

Visibility is tested on a z-buffer at DEPTH_SCALE of the view's resolution (4x fewer pixels to rasterize);
colours are sampled from the full-resolution view. cv2 and the rasterizer (torch) are imported inside
functions only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from pipeline.fitting.dress import fill_unknown, sample_image
from pipeline.geometry import Camera
from pipeline.render.shade import Lighting, vertex_normals
from pipeline.render.views import camera_position

MIN_FACING = 0.1  # cosine under which a view gives a texel no weight
FACING_POWER = 2.0
BEST_VIEWS = 2  # views blended per texel
TIE_SHARE = 1e-3  # of its raw weight every seeing view keeps, so that exactly tied views still blend
DEPTH_TOLERANCE_M = 0.02  # plus the depth change across one z-buffer pixel of the texel's tangent plane
DEPTH_SCALE = 0.5  # z-buffer resolution relative to the view's
EDGE_SLOPE = 5.0  # depth change per lateral distance over a 3x3 z-buffer window that marks a depth edge: a smooth
# surface that steep faces the camera at cos < 0.2, so only silhouettes and occlusions reach it
FEATHER = 1 / 64  # of the image height: the distance over which a weight rises from an occlusion contour
CONFIDENT_WEIGHT = 0.03  # best-view weight (cos ~0.26 at full feather) from which the fallback plays no part
MIN_LIGHT = 0.05  # a view's shading factor under which its colour is not divided out (too dark to trust)
_FAR_M = 1e3  # depth given to background pixels when looking for depth edges
_SUBPIXEL_BITS = 8  # fixed-point bits of the UV corners given to cv2


@dataclass(frozen=True)
class Baked:
    """The back-projected atlas and what the views contributed to it."""

    atlas: np.ndarray  # (S, S, 3) uint8 albedo, row 0 = v 1 (an ordinary image), filled past the UV islands
    covered: np.ndarray  # (S, S) bool: texels inside the UV layout
    seen: np.ndarray  # (S, S) bool: covered texels at least one view sees
    main_view_texels: tuple[int, ...]  # per view, in the order given: seen texels it weighs the most

    @property
    def seen_share(self) -> float:
        """Share of the covered texels seen by at least one view."""
        covered = int(self.covered.sum())
        return float(self.seen.sum()) / covered if covered else 0.0


@dataclass(frozen=True)
class _Texels:
    index: np.ndarray  # (N,) flat index into S * S
    points: np.ndarray  # (3, N) float32 world points (one row per axis: the per-texel maths runs on rows)
    normals: np.ndarray  # (3, N) float32 unit normals
    along: np.ndarray  # (N,) points . normals
    square: np.ndarray  # (N,) points . points


@dataclass(frozen=True)
class _Offer:
    """What one view offers: the texels it sees, their weights and un-shaded colours."""

    index: np.ndarray  # (M,) into the texel arrays
    weight: np.ndarray  # (M,) float32 > 0
    colour: np.ndarray  # (3, M) float32 albedo, 0..255 (may exceed 255 where the view's light clipped)


def bake_views(
    vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, face_uvs: np.ndarray,
    views: Sequence[tuple[np.ndarray, Camera]], lighting: Lighting, *, size: int | tuple[int, int] = 1024,
    fallback_atlas: np.ndarray | None = None,
) -> Baked:
    """Back-project `views` ((H, W, 3) uint8 image, its camera) onto the UV atlas; see the module docstring.

    `lighting` is the light the views were rendered with (ambient, diffuse, camera-frame direction).
    `size`: the atlas's side, or its (width, height) (a skirt's strip under the body's atlas makes it taller).
    `fallback_atlas` (any size, resized to `size`) colours what no view sees; without it, the nearest seen
    texel does. Raises ValueError on inconsistent inputs, or when nothing is seen and there is no fallback.
    """
    shape = (size, size) if isinstance(size, int) else (size[1], size[0])  # (rows, columns)
    _check_inputs(vertices, faces, uvs, face_uvs, views, min(shape), fallback_atlas)
    mesh = np.asarray(vertices, dtype=np.float64)
    tex = _texels(mesh, faces, uvs, face_uvs, shape)
    offers = [_offer(tex, mesh, faces, image, camera, lighting) for image, camera in views]
    colour, best, main = _blend(offers, len(tex.index))
    confidence = np.clip(best / CONFIDENT_WEIGHT, 0.0, 1.0)
    fallback = _fallback_colours(tex.index, colour, confidence >= 1.0, shape, fallback_atlas)
    mixed = np.where((confidence >= 1.0)[:, None], colour, fallback + confidence[:, None] * (colour - fallback))
    atlas = _grid(tex.index, np.clip(mixed + 0.5, 0, 255).astype(np.uint8), shape)
    covered = _grid(tex.index, np.ones(len(tex.index), dtype=bool), shape)
    return Baked(
        atlas=fill_unknown(atlas, covered), covered=covered, seen=_grid(tex.index, best > 0, shape),
        main_view_texels=tuple(int(n) for n in np.bincount(main[main >= 0], minlength=len(offers))),
    )


def _check_inputs(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, face_uvs: np.ndarray,
                  views: Sequence[tuple[np.ndarray, Camera]], size: int, fallback_atlas: np.ndarray | None) -> None:
    """Refuse what the bake would otherwise have to guess about (never silently fixed)."""
    if np.ndim(vertices) != 2 or np.shape(vertices)[1] != 3 or np.ndim(uvs) != 2 or np.shape(uvs)[1] != 2:
        raise ValueError(f"vertices {np.shape(vertices)} must be (V, 3) and uvs {np.shape(uvs)} (V', 2)")
    if np.shape(face_uvs) != np.shape(faces) or np.ndim(faces) != 2 or np.shape(faces)[1] != 3:
        raise ValueError(f"faces {np.shape(faces)} and face_uvs {np.shape(face_uvs)} must both be (F, 3)")
    if not views:
        raise ValueError("no views to bake")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    for image, camera in views:
        width, height = camera.image_size
        if np.shape(image) != (height, width, 3) or np.asarray(image).dtype != np.uint8:
            raise ValueError(f"a view's image {np.shape(image)} must be ({height}, {width}, 3) uint8, as its camera")
    if fallback_atlas is not None:
        rgb = np.asarray(fallback_atlas)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) == 0:
            raise ValueError(f"fallback_atlas must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")


def _texels(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, face_uvs: np.ndarray,
            shape: tuple[int, int]) -> _Texels:
    """The covered texels with float32 points and normals, and the per-texel terms every view re-uses."""
    uvs = np.asarray(uvs, dtype=np.float64)
    rows, cols = shape
    corners = np.stack([uvs[:, 0] * cols, (1.0 - uvs[:, 1]) * rows], axis=1)[np.asarray(face_uvs)]  # (F, 3, 2)
    index, tri = _uv_layout(corners, shape)
    x = (index % cols).astype(np.float32) + 0.5  # texel centres, in texel units as `corners`
    y = (index // cols).astype(np.float32) + 0.5
    faces = np.asarray(faces, dtype=np.int64)
    points = _on_triangles(np.asarray(vertices, dtype=np.float64)[faces], corners, tri, x, y)
    normals = _on_triangles(vertex_normals(vertices, faces)[faces], corners, tri, x, y)
    normals /= np.maximum(np.sqrt(np.einsum("cn,cn->n", normals, normals)), 1e-12)
    return _Texels(index, points, normals, np.einsum("cn,cn->n", points, normals),
                   np.einsum("cn,cn->n", points, points))


def _on_triangles(values: np.ndarray, corners: np.ndarray, tri: np.ndarray, x: np.ndarray,
                  y: np.ndarray) -> np.ndarray:
    """(C, N) float32: the corner `values` (F, 3, C) interpolated linearly over each texel's triangle at its
    centre (x, y). Over a triangle a value is affine in (x, y): per triangle, its value at (0, 0) and its
    gradient, from the corners' texel positions (F, 3, 2); a degenerate triangle takes its first corner's."""
    (ux, uy), (wx, wy) = (corners[:, 1] - corners[:, 0]).T, (corners[:, 2] - corners[:, 0]).T
    det = ux * wy - wx * uy
    inv = np.divide(1.0, det, out=np.zeros_like(det), where=np.abs(det) > 1e-12)
    along_u, along_w = values[:, 1] - values[:, 0], values[:, 2] - values[:, 0]  # (F, C)
    dx = (wy * inv)[:, None] * along_u - (uy * inv)[:, None] * along_w
    dy = (ux * inv)[:, None] * along_w - (wx * inv)[:, None] * along_u
    origin = values[:, 0] - dx * corners[:, 0, :1] - dy * corners[:, 0, 1:]
    out = np.empty((values.shape[2], len(tri)), dtype=np.float32)
    for c in range(values.shape[2]):
        row = np.take(origin[:, c].astype(np.float32), tri)
        row += np.take(dx[:, c].astype(np.float32), tri) * x
        row += np.take(dy[:, c].astype(np.float32), tri) * y
        out[c] = row
    return out


def _uv_layout(corners: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The texels the UV triangles (F, 3, 2: corners in texel units, row 0 = v 1) cover, as flat indices, and
    the triangle of each.

    cv2 fills the triangles one by one with their ids (~40 ms for anny's 27,420 at 1024^2, against ~0.5 s for
    the torch rasterizer, whose cost is the 1.5 M bounding-box fragments of the thin UV triangles). Where two
    triangles share a texel the later one keeps it. cv2 fills every pixel an edge touches, so a texel at an
    island's border may have its centre just outside its triangle: it takes the triangle's plane extended by
    less than a texel.
    """
    import cv2

    fixed = np.round((corners - 0.5) * (1 << _SUBPIXEL_BITS)).astype(np.int32)  # cv2: pixel centres at integers
    ids = np.full(shape, -1, dtype=np.int32)
    for triangle, polygon in enumerate(fixed):
        cv2.fillConvexPoly(ids, polygon, triangle, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    index = np.flatnonzero(ids >= 0)
    return index, ids.reshape(-1)[index].astype(np.int64)


def _offer(tex: _Texels, vertices: np.ndarray, faces: np.ndarray, image: np.ndarray, camera: Camera,
           lighting: Lighting) -> _Offer:
    """The texels `camera` sees facing it, weighted, with the view's colour there divided by its shading."""
    empty = _Offer(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), np.zeros((3, 0), dtype=np.float32))
    centre = camera_position(camera).astype(np.float32)
    distance = np.sqrt(np.maximum(tex.square - 2 * (centre @ tex.points) + centre @ centre, 1e-12))
    cos = (centre @ tex.normals - tex.along) / distance
    index = np.flatnonzero(cos > MIN_FACING)
    if not len(index):
        return empty
    cos = cos[index]
    xy, z = _project(camera, np.take(tex.points, index, axis=1))
    depth, feather = _visibility_maps(vertices, faces, camera)
    small = xy * DEPTH_SCALE
    slope = np.sqrt(1.0 - np.minimum(cos, 1.0) ** 2) / cos  # tan of the viewing angle
    tolerance = DEPTH_TOLERANCE_M + slope * z / (camera.focal_px * DEPTH_SCALE)
    visible = np.abs(_nearest(depth, small, np.inf) - z) < tolerance
    light = -np.asarray(lighting.direction, dtype=np.float32)
    light = np.asarray(camera.rotation, dtype=np.float32).T @ (light / np.linalg.norm(light))  # world frame
    shading = lighting.ambient + lighting.diffuse * np.maximum(light @ np.take(tex.normals, index, axis=1), 0.0)
    facing = ((cos - MIN_FACING) / (1.0 - MIN_FACING)) ** FACING_POWER
    weight = facing * sample_image(feather, small)[:, 0] * (visible & (shading > MIN_LIGHT))
    keep = np.flatnonzero(weight > 0)
    if not len(keep):
        return empty
    colour = sample_image(image, np.take(xy, keep, axis=0)).T / shading[keep]
    return _Offer(index[keep], weight[keep], np.ascontiguousarray(colour, dtype=np.float32))


def _project(camera: Camera, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) float32 pixels and (N,) camera depths of (3, N) float32 world points: one 3x3 product with the
    intrinsics folded in, then the divide."""
    intrinsics = np.array([[camera.focal_px, 0, camera.cx], [0, camera.focal_px, camera.cy], [0, 0, 1]])
    matrix = (intrinsics @ np.asarray(camera.rotation)).astype(np.float32)
    shift = (intrinsics @ np.asarray(camera.translation)).astype(np.float32)
    x, y, z = matrix @ points + shift[:, None]
    z = np.maximum(z, 1e-6)
    return np.stack([x / z, y / z], axis=1), z


def _nearest(grid: np.ndarray, xy: np.ndarray, fill: float) -> np.ndarray:
    """(N,) float32 values of an (H, W) float32 grid at the pixels containing `xy` (`fill` outside): one cv2
    remap (~4x faster than numpy's fancy indexing)."""
    import cv2

    n, width = len(xy), 1024  # remap's maps must stay under 32767 rows
    pixels = np.full((-(-n // width) * width, 2), -1.0, dtype=np.float32)
    pixels[:n] = np.floor(xy)
    out = cv2.remap(grid, pixels.reshape(-1, width, 2), None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                    borderValue=fill)
    return out.reshape(-1)[:n]


def _visibility_maps(vertices: np.ndarray, faces: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """The view's z-buffer at DEPTH_SCALE (+inf on background) and its feather (0..1) there.

    The feather is 0 on background and on depth-edge pixels (a much nearer or farther surface, or background,
    within one pixel: their colour may mix both sides), and rises from occlusion contours (where a nearer
    surface hides this one) to 1 over FEATHER of the image height, so a view's weight fades out where it loses
    sight of a surface instead of stopping. At a silhouette no ramp is needed: the surface turns away there,
    and the facing weight already falls to zero.
    """
    import cv2

    from pipeline.render.raster import rasterize

    width, height = camera.image_size
    small = replace(camera, focal_px=camera.focal_px * DEPTH_SCALE, cx=camera.cx * DEPTH_SCALE,
                    cy=camera.cy * DEPTH_SCALE,
                    image_size=(max(1, round(width * DEPTH_SCALE)), max(1, round(height * DEPTH_SCALE))))
    depth = rasterize(vertices, faces, small).depth
    solid = np.where(np.isfinite(depth), depth, _FAR_M).astype(np.float32)
    limit = EDGE_SLOPE * 2 * solid / small.focal_px  # a 3x3 window spans 2 pixels
    kernel = np.ones((3, 3), dtype=np.uint8)
    occluded = np.isfinite(depth) & (solid - cv2.erode(solid, kernel) > limit)
    edge = ~np.isfinite(depth) | occluded | (cv2.dilate(solid, kernel) - solid > limit)
    distance = cv2.distanceTransform((~occluded).astype(np.uint8), cv2.DIST_L2, 3)
    ramp = max(1.0, FEATHER * small.image_size[1])
    return depth, np.where(edge, 0.0, np.clip((distance - 1.0) / ramp, 0.0, 1.0)).astype(np.float32)


def _blend(offers: list[_Offer], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 3) blended colours of the BEST_VIEWS best views, (N,) the best weight, (N,) the best view (-1: none).

    Each view's weight less the (BEST_VIEWS + 1)-th best weight of the texel, kept at zero or above: a texel
    facing one view squarely takes that view alone, one between two views blends both, and a weight reaches
    zero exactly where its view drops out of the best, so rank changes leave no seam.
    """
    weights = np.zeros((len(offers), n), dtype=np.float32)
    top = np.zeros((BEST_VIEWS + 1, n), dtype=np.float32)  # each texel's best weights, descending
    main = np.full(n, -1, dtype=np.int64)
    carry, spare = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)
    for k, offer in enumerate(offers):
        weights[k, offer.index] = offer.weight
        main[weights[k] > top[0]] = k
        carry[:] = weights[k]
        for rank in top:  # insert into the sorted top, in place: these arrays are large
            np.minimum(rank, carry, out=spare)
            np.maximum(rank, carry, out=rank)
            carry, spare = spare, carry
    total = TIE_SHARE * weights.sum(axis=0)
    blend = weights
    blend -= top[BEST_VIEWS]
    np.maximum(blend, 0.0, out=blend)
    total += blend.sum(axis=0)
    summed = np.zeros((3, n), dtype=np.float32)
    for k, offer in enumerate(offers):  # a view offers each texel once, so fancy-index += loses no update
        share = np.take(blend[k], offer.index) + TIE_SHARE * offer.weight
        for channel in range(3):
            summed[channel, offer.index] += share * offer.colour[channel]
    return (summed / np.maximum(total, 1e-12)).T, top[0], main


def _fallback_colours(index: np.ndarray, colour: np.ndarray, confident: np.ndarray, shape: tuple[int, int],
                      fallback_atlas: np.ndarray | None) -> np.ndarray:
    """(N, 3) float colours for texels the views see poorly: the fallback atlas, else the nearest confident texel."""
    import cv2

    if fallback_atlas is not None:
        atlas = np.ascontiguousarray(fallback_atlas)
        if atlas.shape[:2] != shape:
            atlas = cv2.resize(atlas, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        return atlas.reshape(-1, 3)[index].astype(np.float32)
    if not confident.any():
        raise ValueError("no view sees the mesh well and no fallback_atlas was given")
    known = _grid(index, np.clip(colour + 0.5, 0, 255).astype(np.uint8), shape)
    return fill_unknown(known, _grid(index, confident, shape)).reshape(-1, 3)[index].astype(np.float32)


def _grid(index: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(S, S) or (S, S, C) grid holding `values` at the flat `index`, zero elsewhere."""
    grid = np.zeros((shape[0] * shape[1], *values.shape[1:]), dtype=values.dtype)
    grid[index] = values
    return grid.reshape(*shape, *values.shape[1:])
