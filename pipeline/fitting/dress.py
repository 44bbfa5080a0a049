"""Dress the fitted body: the garment's texture on the region its category covers, pushed out by the ease, and
the person's own appearance (projected from the photo) everywhere else, on one texture atlas in anny's UVs.

1. Region (`pipeline.fitting.regions`): soft per-vertex garment weights from the rest pose's body parts.
2. Ease: garment vertices move out along their normals by ease / (2 pi) (a girth's extra length spread evenly
   round it), capped at `MAX_OFFSET_CM`, weighted by the soft region so the offset fades at the garment's edges.
3. Atlas: the UV layout is rasterized at S x S (the software rasterizer with a flat camera); every texel gets
   its 3D point on the posed body. Texels seen in the photo (camera depth within `VISIBLE_TOLERANCE_M` of the
   body's z-buffer, facing the camera, inside the person mask less the background its loose edge takes in,
   `pipeline.fitting.background`) take the photo's colour. Texels not seen take the
   photo at their point mirrored through the body's coronal plane when that pixel shows the same body part
   (backs of the torso, legs and arms). The head turned from the camera takes hair and skin tones, and limbs
   the garment bares lose the person's old sleeves or trousers (`pipeline.fitting.appearance`); what is left
   takes the nearest known texel's colour (distance transform), softened, except where that texel is another
   body part's or the garment's, or the texel lies past the photo's frame on a limb taken for bare: those are
   filled along the body's surface instead (`pipeline.fitting.surface_fill`, `fill_across_parts`). Every texel
   whose colour was made up (those fills, the skin, the head's hair and skin, photo.png's own refills) then takes
   the photo's grain and shading, and hair strands where it is hair (`pipeline.fitting.unseen`), so no flat
   patch is left.
4. Garment: front-facing garment texels take the cutout, its mask box mapped onto the region's box as the photo's
   camera sees it; the back takes the back's cutout at the mirrored point (`pipeline.fitting.neck`: the inside
   seen through the neck opening taken out, and a placed print, which stays on the front, filled); the
   rest (sides the cutout misses) a mirrored-repeat tile of the plain fabric crop (texture.png), placed by the
   texel's world position. Never a hole. Sleeves reach as far as the garment photo's do (`pipeline.fitting.sleeves`).

cv2 and the rasterizer (torch) are imported inside functions only.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from pipeline.fitting import appearance, regions, surface_fill, unseen
from pipeline.fitting.background import background_in_mask
from pipeline.fitting.hair import shell_share, skull_centre, volume_offsets
from pipeline.geometry import BodyMesh, Camera, PosedBody
from pipeline.render.shade import vertex_normals
from pipeline.render.views import camera_position

if TYPE_CHECKING:
    from pipeline.render.raster import Raster

MAX_OFFSET_CM = 4.0
VISIBLE_TOLERANCE_M = 0.02
MIN_FACING = 0.15  # cosine between the normal and the direction to the camera for a texel to count as seen
FRONT_FACING = 0.3  # the cutout goes on texels facing the camera at least this much (cosine); the tile elsewhere
MASK_ERODE = 1 / 256  # of the image height: the person mask is shrunk so its soft edge lends no background
TILE_M = 0.22  # the fabric tile's side on the body, metres
_HEAD = regions.PARTS.index("head")
T = TypeVar("T")


@dataclass(frozen=True)
class DressedBody:
    """The dressed mesh and its texture atlas (anny's UVs, v up as `sample_texture` expects)."""

    vertices: np.ndarray  # (V, 3) float32: the garment region pushed out by the ease
    atlas: np.ndarray  # (S, S, 3) uint8
    garment_texels: np.ndarray  # (S, S) bool
    garment_vertices: np.ndarray  # (V,) bool
    coverage: float  # share of the garment texels facing the photo's camera that took the garment photo itself
    seen: float  # share of the body's texels whose colour the photo shows directly
    sleeve_m: float | None = None  # how far down the arm the sleeves reach (None: the category's default)
    bared_limbs: float = 0.0  # share of the replaced limbs' texels whose old clothes turned to skin
    vertex_part: np.ndarray | None = None  # (V,) int index into regions.PARTS
    skin: np.ndarray | None = None  # (3,) float RGB skin tone seen in the photo (None: none seen)
    seen_texels: np.ndarray | None = None  # (S, S) bool: texels whose colour the photo shows directly
    made_up: float = 0.0  # share of the body's texels off the garment whose colour was made up (weighted 0..1)
    made_texels: np.ndarray | None = None  # (S, S) float32: how much of each texel's colour was made up (0 the
    # photo's own, directly or mirrored; 1 made up; 0 on the garment and off the layout): atlas_source.png
    faces: np.ndarray | None = None  # the dressed mesh's own topology when it is not the body's (a skirt shell
    uvs: np.ndarray | None = None  # added, the legs under it dropped: `pipeline.fitting.skirt_look`); None: the
    face_uvs: np.ndarray | None = None  # body's faces, UVs and face UVs
    skirt: dict[str, object] | None = None  # what was done for a skirt or a dress (fitting.json dressing.skirt)

    def mesh(self, body: BodyMesh) -> BodyMesh:
        """The dressed mesh: the body's topology and UVs unless the dressing gave its own."""
        if self.faces is None or self.uvs is None or self.face_uvs is None:
            return BodyMesh(self.vertices, body.faces, body.uvs, body.face_uvs)
        return BodyMesh(self.vertices, self.faces, self.uvs, self.face_uvs)


@dataclass(frozen=True)
class Texels:
    """The covered texels of the atlas: flat indices, 3D points, normals, part labels, garment weights."""

    index: np.ndarray  # (N,) flat index into S * S
    points: np.ndarray  # (N, 3) posed world points
    normals: np.ndarray  # (N, 3) unit
    part: np.ndarray  # (N,) int
    garment: np.ndarray  # (N,) float weight
    height: np.ndarray  # (N,) rest-pose height (metres), the frame the body parts' levels are in
    corners: np.ndarray | None = None  # (N, 3) the vertices of each texel's triangle (None: from the faces)


def uv_camera(size: int) -> Camera:
    """A camera that maps (x, y, 1) to pixel (x, y): for rasterizing the UV layout."""
    return Camera(focal_px=1.0, cx=0.0, cy=0.0, rotation=np.eye(3), translation=np.zeros(3), image_size=(size, size))


class ContentCache(Generic[T]):
    """A few values kept for the process's next jobs, keyed by the sha256 of what they are computed from (arrays
    and bytes); the oldest goes first. Thread-safe; two threads missing at once both compute, and one is kept."""

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self._values: dict[str, T] = {}
        self._lock = threading.Lock()

    def get(self, sources: Sequence[np.ndarray | bytes], make: Callable[[], T]) -> T:
        digest = hashlib.sha256()
        for source in sources:
            digest.update(source if isinstance(source, bytes) else np.ascontiguousarray(source).tobytes())
        key = digest.hexdigest()
        with self._lock:
            if key in self._values:
                return self._values[key]
        value = make()
        with self._lock:
            while len(self._values) >= self.kept:
                self._values.pop(next(iter(self._values)))
            self._values[key] = value
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


UvRaster = tuple[np.ndarray, np.ndarray, np.ndarray]
_UV_RASTERS: ContentCache[UvRaster] = ContentCache(4)


def uv_raster(uvs: np.ndarray, face_uvs: np.ndarray, size: int) -> UvRaster:
    """(flat texel index, triangle, barycentrics) of every covered texel of the UV layout (row 0 = v 1). The layout
    is the body model's, the same for every job: rasterized once per process and kept (a few, keyed by content)."""
    from pipeline.render.raster import rasterize

    def make() -> UvRaster:
        flat = np.column_stack([uvs[:, 0] * size, (1.0 - uvs[:, 1]) * size, np.ones(len(uvs))])
        raster = rasterize(flat, face_uvs, uv_camera(size), cull_back=False)
        index = np.flatnonzero(raster.triangle >= 0)
        return index, raster.triangle.reshape(-1)[index], raster.bary.reshape(-1, 3)[index].astype(np.float64)

    return _UV_RASTERS.get([np.asarray(uvs, np.float32), np.asarray(face_uvs, np.int64), str(size).encode()], make)


def atlas_texels(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, face_uvs: np.ndarray, size: int,
                 part: np.ndarray, height: np.ndarray | None = None) -> Texels:
    """The UV layout's covered texels with the body's attributes interpolated at each; their garment weights 0, for
    `texel_weights` to fill in per garment."""
    index, tri, bary = uv_raster(uvs, face_uvs, size)
    corners = np.asarray(faces, dtype=np.int64)[tri]
    points = np.einsum("nk,nkc->nc", bary, np.asarray(vertices, np.float64)[corners])
    normals = np.einsum("nk,nkc->nc", bary, vertex_normals(vertices, faces)[corners])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    nearest = corners[np.arange(len(tri)), bary.argmax(axis=1)]
    rest_z = points[:, 2] if height is None else np.einsum("nk,nk->n", bary, np.asarray(height)[corners])
    return Texels(index, points, normals, part[nearest], np.zeros(len(tri)), rest_z, corners)


def texel_weights(faces: np.ndarray, uvs: np.ndarray, face_uvs: np.ndarray, size: int, weight: np.ndarray
                  ) -> np.ndarray:
    """(N,) the per-vertex `weight` interpolated at each covered texel (`atlas_texels`' order)."""
    _, tri, bary = uv_raster(uvs, face_uvs, size)
    return np.einsum("nk,nk->n", bary, weight[np.asarray(faces, dtype=np.int64)[tri]])


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


def outside_frame(camera: Camera, points: np.ndarray) -> np.ndarray:
    """(N,) bool: the points the camera's frame does not hold."""
    xy, _ = project(camera, np.asarray(points, np.float64))
    width, height = camera.image_size
    return (xy[:, 0] < 0) | (xy[:, 0] >= width) | (xy[:, 1] < 0) | (xy[:, 1] >= height)


def pixel_lookup(grid: np.ndarray, xy: np.ndarray, fill: float | int) -> np.ndarray:
    """(N,) values of an (H, W) grid at the pixels containing `xy` (`fill` outside)."""
    h, w = grid.shape
    ix, iy = np.floor(xy[:, 0]).astype(np.int64), np.floor(xy[:, 1]).astype(np.int64)
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    out = np.full(len(xy), fill, dtype=grid.dtype)
    out[inside] = grid[iy[inside], ix[inside]]
    return out


@dataclass(frozen=True)
class PhotoSight:
    """How the photo's camera sees every texel, from the body alone (not the photo's pixels): the same for both
    dressings of a job, so `dress_geometry` computes it once."""

    xy: np.ndarray  # (N, 2) the texel's pixel
    mirror_xy: np.ndarray  # (N, 2) the pixel of its point mirrored through the body's coronal plane
    facing: np.ndarray  # (N,) cosine between its normal and the direction to the camera
    in_front: np.ndarray  # (N,) bool: on the body's z-buffer (within VISIBLE_TOLERANCE_M) and facing the camera
    mirror_same_part: np.ndarray  # (N,) bool: the mirrored pixel shows the same body part


def photo_sight(tex: Texels, camera: Camera, body_raster: Raster, face_part: np.ndarray) -> PhotoSight:
    """The texels as the photo's camera sees them (`body_raster`: the body's raster from that camera; `face_part`:
    each body face's part)."""
    xy, z = project(camera, tex.points)
    mxy, _ = project(camera, mirrored(tex.points))
    facing = facing_cosine(tex, camera)
    visible = np.abs(pixel_lookup(body_raster.depth, xy, np.inf) - z) < VISIBLE_TOLERANCE_M
    pixel_part = np.where(body_raster.triangle >= 0, face_part[np.maximum(body_raster.triangle, 0)], -1)
    return PhotoSight(xy, mxy, facing, visible & (facing > MIN_FACING), pixel_lookup(pixel_part, mxy, -1) == tex.part)


def person_colours(tex: Texels, sight: PhotoSight, photo: np.ndarray, mask: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 3) colours from the photo, (N,) bool known (seen texels and mirrored backs), (N,) bool seen directly:
    a texel is seen where the photo's camera sees it (`sight`) inside the person `mask`."""
    colour = np.zeros((len(tex.index), 3), dtype=np.float32)
    seen = sight.in_front & (pixel_lookup(mask, sight.xy, 0.0) > 0.5)
    colour[seen] = sample_image(photo, sight.xy[seen])
    known = seen.copy()
    same = sight.mirror_same_part & (pixel_lookup(mask, sight.mirror_xy, 0.0) > 0.5)
    back = ~known & same & (tex.part != _HEAD)
    colour[back] = sample_image(photo, sight.mirror_xy[back])
    known |= back
    return colour, known, seen


def mirrored(points: np.ndarray) -> np.ndarray:
    """Points mirrored front to back through the body's coronal plane (the median y)."""
    out = np.asarray(points, dtype=np.float64).copy()
    out[:, 1] = 2 * np.median(out[:, 1]) - out[:, 1]
    return out


def facing_cosine(tex: Texels, camera: Camera) -> np.ndarray:
    """(N,) cosine between each texel's normal and the direction to the camera."""
    towards = camera_position(camera) - tex.points
    return np.einsum("nc,nc->n", tex.normals, towards) / np.maximum(np.linalg.norm(towards, axis=1), 1e-12)


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


def garment_colours(tex: Texels, camera: Camera, sight: PhotoSight, garment_rgba: np.ndarray, tile: np.ndarray,
                    region_box: tuple[float, float, float, float],
                    print_box: tuple[int, int, int, int] | None = None,
                    back_rgba: np.ndarray | None = None, front_rgba: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) garment colours for every texel and (N,) bool: took the cutout on the front (inside its mask).

    Front-facing texels take the cutout where the photo's camera sees them (the cutout's mask box mapped onto
    the region's box). The back takes the cutout at the mirrored point, so the back continues the front's
    colours, panels and all-over prints; a placed print (`print_box`, the cutout's frame) is not copied to the
    back: there, and wherever the cutout is empty, the plain fabric tile shows."""
    colour = tile_colours(tex, tile)
    opaque = garment_rgba[..., 3] > 127
    if not opaque.any():
        return colour, np.zeros(len(colour), dtype=bool)
    rows, cols = np.nonzero(opaque)
    gx0, gy0, gx1, gy1 = cols.min(), rows.min(), cols.max() + 1, rows.max() + 1
    x0, y0, x1, y1 = region_box
    rgba = _eroded_alpha(garment_rgba)

    def cutout_xy(xy: np.ndarray) -> np.ndarray:
        return np.column_stack([gx0 + (xy[:, 0] - x0) / max(x1 - x0, 1e-6) * (gx1 - gx0),
                                gy0 + (xy[:, 1] - y0) / max(y1 - y0, 1e-6) * (gy1 - gy0)])

    front = sight.facing > FRONT_FACING
    sampled = sample_image(rgba if front_rgba is None else _eroded_alpha(front_rgba), cutout_xy(sight.xy))
    took = front & (sampled[:, 3] > 127)
    colour[took] = sampled[took, :3]
    behind = ~front
    bxy = cutout_xy(project(camera, mirrored(tex.points[behind]))[0])
    back = sample_image(rgba if back_rgba is None else _eroded_alpha(back_rgba), bxy)
    usable = back[:, 3] > 127
    if back_rgba is not None:  # the back's own cutout: its print already taken off
        print_box = None
    if print_box is not None:
        px0, py0, px1, py1 = print_box
        usable &= ~((bxy[:, 0] >= px0) & (bxy[:, 0] < px1) & (bxy[:, 1] >= py0) & (bxy[:, 1] < py1))
    index = np.flatnonzero(behind)[usable]
    colour[index] = back[usable, :3]
    if print_box is not None:  # the print's place on the back: plain fabric in the colour around the print
        covered = np.flatnonzero(behind)[~usable & (back[:, 3] > 127)]
        colour[covered] = tile_colours(_subset(tex, covered), _matched_tile(tile, garment_rgba, print_box))
    return colour, took


def _eroded_alpha(garment_rgba: np.ndarray) -> np.ndarray:
    """The cutout with its alpha shrunk by ~1 % of its size, so the background fringe at its edge is never sampled."""
    import cv2

    rgba = np.ascontiguousarray(garment_rgba).copy()
    radius = max(1, round(0.01 * max(rgba.shape[:2])))
    rgba[..., 3] = cv2.erode(rgba[..., 3], np.ones((2 * radius + 1, 2 * radius + 1), np.uint8))
    return rgba


def _matched_tile(tile: np.ndarray, garment_rgba: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The fabric tile shifted to the median garment colour in a ring round `box` (the fabric next to the print)."""
    x0, y0, x1, y1 = box
    pad = max(4, (x1 - x0 + y1 - y0) // 10)
    h, w = garment_rgba.shape[:2]
    ring = np.zeros((h, w), dtype=bool)
    ring[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad] = True
    ring[y0:y1, x0:x1] = False
    ring &= garment_rgba[..., 3] > 127
    if ring.sum() < 16:
        return tile
    shift = np.median(garment_rgba[ring][:, :3], axis=0) - tile.reshape(-1, 3).mean(axis=0)
    return np.clip(tile.astype(np.float32) + shift, 0, 255).astype(np.uint8)


def _subset(tex: Texels, index: np.ndarray) -> Texels:
    return Texels(tex.index[index], tex.points[index], tex.normals[index], tex.part[index], tex.garment[index],
                  tex.height[index])


def nearest_known(known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) each pixel's distance to the nearest `known` pixel (an exact Euclidean distance transform) and (H * W,)
    that pixel's flat index (the pixel itself where it is known). `known` must hold at least one pixel."""
    import cv2

    distance, labels = cv2.distanceTransformWithLabels((~known).astype(np.uint8), cv2.DIST_L2, 5,
                                                       labelType=cv2.DIST_LABEL_PIXEL)
    flat = np.flatnonzero(known)
    order = np.zeros(labels.max() + 1, dtype=np.int64)
    order[labels.reshape(-1)[flat]] = np.arange(len(flat))
    return distance, flat[order[labels.reshape(-1)]]


def fill_unknown(atlas: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Every unknown texel takes the nearest known texel's colour; the filled area is then softened."""
    import cv2

    if known.all() or not known.any():
        return atlas
    distance, nearest = nearest_known(known)
    filled = atlas.copy()
    unknown = ~known
    source = nearest.reshape(known.shape)[unknown]
    filled[unknown] = atlas[source // known.shape[1], source % known.shape[1]]
    far = distance > 3  # soften deep fills only: texels next to an island keep its colour (no seam lines)
    soft = cv2.blur(filled, (7, 7))
    filled[far] = soft[far]
    return filled


def colour_pixels(sight: PhotoSight, seen: np.ndarray) -> np.ndarray:
    """(N, 2) the photo pixel each texel's colour is read from: its own where the photo sees it, else its mirrored
    point's (`person_colours`)."""
    return np.where(seen[:, None], sight.xy, sight.mirror_xy)


def falls_on(mask: np.ndarray | None, camera: Camera, xy: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(N,) bool: the `known` texels whose pixel `xy` is in the (H, W) `mask` (none where there is no mask, or one
    that is not the photo's frame: it says nothing)."""
    width, height = camera.image_size
    if mask is None or np.shape(mask) != (height, width):
        return np.zeros(len(known), dtype=bool)
    return known & pixel_lookup(np.asarray(mask, dtype=bool), xy, False)


def under_new_garment(tex: Texels, sight: PhotoSight, camera: Camera, photo: PersonPhoto, colour: np.ndarray,
                      seen: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(N,) bool: the known texels off the garment whose pixel (directly or mirrored) is photo.png's new garment:
    the body under its hem or beside its edge, which took the garment's colour (a photo cut at the hip: the thighs
    lilac under a lilac top, and the fill spread it down the legs). Where the original photo shows the person's own
    clothes or skin there (`photo.beneath`), those texels take the original's colours in place (in `colour`) and
    stay known; the rest are returned, to be made up."""
    xy = colour_pixels(sight, seen)
    over = falls_on(photo.painted, camera, xy, known) & (tex.garment <= 0.5)
    width, height = camera.image_size
    if photo.original is None or photo.original.shape[:2] != (height, width):
        return over
    took = falls_on(photo.beneath, camera, xy, over)
    colour[took] = sample_image(np.asarray(photo.original[..., :3]), xy[took])
    return over & ~took


def _made_in_photo(camera: Camera, sight: PhotoSight, made_px: np.ndarray | None, seen: np.ndarray,
                   known: np.ndarray) -> np.ndarray:
    """(N,) float: 1 where a texel's photo colour is itself made up (it falls on `made_px`, directly or mirrored)."""
    return falls_on(made_px, camera, colour_pixels(sight, seen), known).astype(np.float64)


def texture_unseen(atlas: np.ndarray, tex: Texels, source: np.ndarray, made: np.ndarray, camera: Camera,
                   facing: np.ndarray, hair: np.ndarray | None = None, skin: np.ndarray | None = None) -> np.ndarray:
    """The atlas with its made-up texels (`made`, 0..1 per texel) given the grain of the `source` texels (the
    photo's own, off the garment; those the photo sees at `unseen.GRAIN_FACING` or squarer, directly or mirrored:
    its grazing edge, next to what it does not show, is its blurriest), the photo's light and, where they are the
    `hair` colour, strands (`pipeline.fitting.unseen`). Texels with nothing made up are left exactly as they are."""
    size = atlas.shape[0]
    todo = np.flatnonzero(made > 0)
    if not len(todo):
        return atlas
    part = np.full(size * size, -1, dtype=np.int64)
    part[tex.index] = tex.part
    grid = np.zeros(size * size, dtype=bool)
    resolved = source & (np.abs(facing) > unseen.GRAIN_FACING)  # not the photo's grazing edge
    grid[tex.index[resolved if resolved.sum() >= unseen.MIN_FIT else source]] = True
    target = np.zeros(size * size, dtype=bool)
    target[tex.index[todo]] = True
    head = part.reshape(size, size) == _HEAD
    grain = unseen.transfer_grain(atlas, grid.reshape(size, size), part.reshape(size, size),
                                  target.reshape(size, size), fine=head).reshape(-1, 3)
    if skin is not None:
        _skin_grain(grain, atlas, tex, resolved, todo, skin)
    flat = atlas.reshape(-1, 3).copy()
    side, up = unseen.side_and_up(tex.normals, np.asarray(camera.rotation, dtype=np.float64)[2])
    fit = np.flatnonzero(source)[:: unseen.FIT_STRIDE]
    slopes = unseen.fit_shading(flat[tex.index[fit]].astype(np.float32) @ unseen.LUMA, tex.part[fit], side[fit],
                                up[fit], np.ones(len(fit), dtype=bool))
    light = unseen.shading(side[todo], up[todo], slopes, made[todo])
    light[tex.part[todo] == _HEAD] = 1.0  # not on the head: shading its made-up sides moved the identity distance
    colour = unseen.apply(flat[tex.index[todo]].astype(np.float32), made[todo], grain[tex.index[todo]], light)
    if hair is not None:  # strands on the made-up texels of the hair's colour
        head = tex.part == _HEAD
        centre = np.median(tex.points[head], axis=0) if head.any() else np.median(tex.points, axis=0)
        distance = np.linalg.norm(appearance.lab(colour) - appearance.lab(hair)[0], axis=1)
        near = np.flatnonzero(distance < unseen.HAIR_NEAR)
        colour[near] = unseen.hair_strands(colour[near], made[todo[near]], distance[near],
                                           unseen.strands(tex.points[todo[near]], centre))
    flat[tex.index[todo]] = (colour + 0.5).astype(np.uint8)
    return flat.reshape(atlas.shape)


def _skin_grain(grain: np.ndarray, atlas: np.ndarray, tex: Texels, resolved: np.ndarray, todo: np.ndarray,
                skin: np.ndarray) -> None:
    """In place: made-up skin texels on a part the photo does not show (a leg below a photo cut at the hip: too few
    of its own texels to take detail from) take the grain (`grain`, the photo texels' own detail where they are
    `resolved`) of the photo's skin off the head instead of the nearest texels' in the atlas (another part's: a
    skirt's print ran onto the bare legs as ghost stripes)."""
    counts = np.bincount(tex.part[resolved], minlength=len(regions.PARTS))
    orphan = todo[counts[tex.part[todo]] < unseen.MIN_FIT]
    size = atlas.shape[0]
    flat = atlas.reshape(-1, 3)
    if len(orphan):  # only those filled with skin: trousers continued below the frame keep their own grain
        orphan = orphan[np.linalg.norm(appearance.lab(flat[tex.index[orphan]]) - appearance.lab(skin)[0], axis=1)
                        < appearance.NOT_SKIN_DELTA[0]]
    if not len(orphan):
        return
    candidates = np.flatnonzero(resolved & (tex.part != _HEAD))
    near_skin = np.linalg.norm(appearance.lab(flat[tex.index[candidates]]) - appearance.lab(skin)[0], axis=1)
    donors = candidates[near_skin < appearance.NOT_SKIN_DELTA[0]]
    if len(donors) < unseen.MIN_FIT:
        return
    grid = np.zeros(size * size, dtype=bool)
    grid[tex.index[donors]] = True
    target = np.zeros(size * size, dtype=bool)
    target[tex.index[orphan]] = True
    one_part = np.where(grid | target, 0, -1).reshape(size, size)  # donors and orphans count as one part
    py, px, dy, dx = unseen.reflect_from(grid.reshape(size, size), one_part, target.reshape(size, size))
    detail = grain.reshape(size, size, 3)
    detail[py, px] = detail[dy, dx]


def ease_offsets(parts: regions.BodyParts, weight: np.ndarray, ease_cm_by_region: dict[str, float]) -> np.ndarray:
    """(V,) metres: ease / (2 pi), clipped to [0, MAX_OFFSET_CM], times the soft garment weight."""
    ease = regions.ease_per_vertex(parts, ease_cm_by_region)
    return np.clip(ease / (2 * np.pi), 0.0, MAX_OFFSET_CM) / 100.0 * weight


def region_box(vertices: np.ndarray, garment: np.ndarray, camera: Camera,
               heights: tuple[float, float] | None = None) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) pixel box of the garment region as the photo's camera sees it; with `heights` (world z of
    the box's top and bottom), its rows are where the camera sees those heights on the region's vertical axis."""
    points = np.asarray(vertices, dtype=np.float64)[garment] if garment.any() else np.asarray(vertices, np.float64)
    xy, _ = project(camera, points)
    x0, y0, x1, y1 = float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())
    if heights is not None:
        axis = np.repeat(np.median(points, axis=0)[None], 2, axis=0)
        axis[:, 2] = heights
        y0, y1 = (float(y) for y in project(camera, axis)[0][:, 1])
    return x0, y0, x1, y1


def _photo_inputs(photo_rgb: np.ndarray, person_mask: np.ndarray, camera: Camera,
                  painted: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The photo and a float mask at the camera's image size, without the background its edge takes in
    (`pipeline.fitting.background`): texels whose pixel is background are not seen, and are made up. `painted`
    pixels (the garment photo.png drew) are the garment, whatever their colour next to the background."""
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
    background = background_in_mask(photo, mask > 0.5)  # the mask's loose edge
    if painted is not None:
        keep = np.asarray(painted, dtype=np.uint8)
        if keep.shape != (height, width):
            keep = cv2.resize(keep, (width, height), interpolation=cv2.INTER_NEAREST)
        background &= keep == 0
    mask = np.where(background, 0.0, mask).astype(np.float32)
    radius = max(1, round(height * MASK_ERODE))
    mask = cv2.erode(mask, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8))
    return photo, mask


@dataclass(frozen=True)
class PersonPhoto:
    """The person as the avatar phase saw them: the upright photo, the person mask, the photo's camera."""

    rgb: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) float32 in [0, 1]
    camera: Camera
    hair: appearance.Hair | None = None  # the hair measured on the photo (colour, length): carried round the head
    made: np.ndarray | None = None  # (H, W) bool: pixels the photo made up itself (photo.png's refills)
    painted: np.ndarray | None = None  # (H, W) bool: photo.png's new garment, ours: never taken for background
    beneath: np.ndarray | None = None  # (H, W) bool: of `painted`, where `original` shows the person's own other
    original: np.ndarray | None = None  # clothes or skin (not the old garment); (H, W, 3) uint8: the photo itself


@dataclass(frozen=True)
class GarmentLook:
    """The garment as the wardrobe phase left it, and how far it reaches on the body."""

    cutout: np.ndarray  # (h, w, 4) uint8 RGBA: the garment photo with its mask as alpha
    category: str  # "upper" | "lower" | "full"
    texture: np.ndarray | None = None  # texture.png: the plain fabric crop
    print_box: tuple[int, int, int, int] | None = None  # a placed print's box in the cutout (kept off the back)
    back: np.ndarray | None = None  # the cutout as the back reads it (`pipeline.fitting.neck`); None: the cutout
    front: np.ndarray | None = None  # the cutout as the front reads it (`neck.front_cutout`); None: the cutout
    sleeve_reach: float | None = None  # in garment heights (`pipeline.fitting.sleeves`); None = the category's
    heights: tuple[float, float] | None = None  # world z of the cutout's first and last garment rows (a skirt's
    # plan, `pipeline.fitting.skirt`, so the torso and the skirt shell read the photo alike); None: the region's box


@dataclass(frozen=True)
class DressGeometry:
    """What a dressing takes from the body, the photo's camera and the garment alone, not the photo's pixels:
    the same for both dressings of a job (photo.png's and the views'), so it is computed once."""

    vertices: np.ndarray  # (V, 3) float64 posed
    parts: regions.BodyParts
    sleeve_m: float | None
    weight: np.ndarray  # (V,) garment weight
    tex: Texels
    sight: PhotoSight  # how the photo's camera sees the texels
    garment_colour: np.ndarray  # (N, 3) the garment's colour at every texel
    took: np.ndarray  # (N,) bool: texels that took the garment photo itself (not the tile)


@dataclass(frozen=True)
class BodySight:
    """What a dressing takes from the body and the photo's camera alone: the body's parts, the atlas texels (their
    garment weights 0) and how the camera sees them. One person photo in a catalog keeps it for every garment."""

    parts: regions.BodyParts
    tex: Texels
    sight: PhotoSight


BODY_SIGHTS_KEPT = 1  # bodies kept between jobs (~75 MB each at 1024): a catalog runs one photo's garments together
_BODY_SIGHTS: ContentCache[BodySight] = ContentCache(BODY_SIGHTS_KEPT)


def body_sight(body: BodyMesh, camera: Camera, atlas_size: int) -> BodySight:
    """`BodySight` of this body and camera: computed, or the one kept from the last job on the same body (keyed by
    the content of everything it is made from; its arrays are read-only)."""
    from pipeline.render.raster import rasterize

    vertices, faces = np.asarray(body.vertices, np.float64), body.faces
    sources: list[np.ndarray | bytes] = [camera.to_json(), str(atlas_size).encode(), vertices, faces, body.uvs,
                                         body.face_uvs]
    if isinstance(body, PosedBody):
        sources += [body.rest_vertices, body.keypoints_3d]

    def make() -> BodySight:
        rest, rest_kp = vertices, None
        if isinstance(body, PosedBody):
            rest = np.asarray(body.rest_vertices, dtype=np.float64)
            rest_kp = regions.rest_keypoints(vertices, rest, body.keypoints_3d)
        parts = regions.body_parts(rest, rest_kp)
        tex = atlas_texels(vertices, faces, body.uvs, body.face_uvs, atlas_size, parts.label, parts.height)
        sight = photo_sight(tex, camera, rasterize(vertices, faces, camera), parts.label[np.asarray(faces)[:, 0]])
        for held in (parts, tex, sight):  # shared by the jobs that follow: nothing may write into them
            for value in vars(held).values():
                if isinstance(value, np.ndarray):
                    value.setflags(write=False)
        return BodySight(parts, tex, sight)

    return _BODY_SIGHTS.get(sources, make)


def dress_geometry(body: BodyMesh, camera: Camera, garment: GarmentLook, atlas_size: int = 1024) -> DressGeometry:
    """The body's parts, the garment's region and texels, the photo camera's raster and the garment's colours."""
    vertices, faces = np.asarray(body.vertices, np.float64), body.faces
    seen = body_sight(body, camera, atlas_size)
    parts, sight = seen.parts, seen.sight
    reach = garment.sleeve_reach
    sleeve_m = None if reach is None else reach * regions.region_height_m(garment.category, parts.levels)
    weight = regions.garment_weights(parts, faces, garment.category, sleeve_m)
    tex = replace(seen.tex, garment=texel_weights(faces, body.uvs, body.face_uvs, atlas_size, weight))
    cutout = np.asarray(garment.cutout)
    g_colour, took = garment_colours(tex, camera, sight, cutout, fabric_tile(cutout, garment.texture),
                                     region_box(vertices, weight > 0.5, camera, garment.heights), garment.print_box,
                                     garment.back, garment.front)
    return DressGeometry(vertices, parts, sleeve_m, weight, tex, sight, g_colour, took)


def dress_body(body: BodyMesh, photo: PersonPhoto, garment: GarmentLook, ease_cm_by_region: dict[str, float], *,
               atlas_size: int = 1024, worn_in_photo: bool = False, texture_made: bool = True,
               geometry: DressGeometry | None = None) -> DressedBody:
    """Put the garment on the posed body (see the module docstring). A `PosedBody` (its keypoints and rest pose)
    sharpens the region (arms told from torso); a plain `BodyMesh` is split into parts by height alone.
    `worn_in_photo`: the photo already shows the person in this garment (a try-on model's photo.png), so the
    garment texels it shows keep the photo's colours (its folds and light) and only the unseen ones take the
    garment photo. `texture_made`: fill what another part or the garment borders in the atlas along the body
    (`fill_across_parts`) and give the made-up texels grain, shading and hair strands (`pipeline.fitting.unseen`);
    off where only the garment's texels are used (photo.png's render).
    `geometry`: `dress_geometry` of this body, camera, garment and atlas size, when the caller has it."""
    camera, category, faces = photo.camera, garment.category, body.faces
    geo = geometry or dress_geometry(body, camera, garment, atlas_size)
    vertices, parts, sleeve_m, weight, tex = geo.vertices, geo.parts, geo.sleeve_m, geo.weight, geo.tex
    rgb, mask = _photo_inputs(photo.rgb, photo.mask, camera, photo.painted)
    colour, known, seen = person_colours(tex, geo.sight, rgb, mask)
    if photo.painted is not None:  # the new garment in photo.png is not the colour of the body beside or under it
        over = under_new_garment(tex, geo.sight, camera, photo, colour, seen, known)
        known &= ~over
        seen &= ~over
    facing = geo.sight.facing
    made = _made_in_photo(camera, geo.sight, photo.made, seen, known)
    eye = parts.levels.get("eye")
    found = appearance.tones(colour, seen, facing, tex.part, tex.height, eye)
    cheeks = appearance.cheek_skin(photo.rgb, photo.mask, body.keypoints_2d) if isinstance(body, PosedBody) else None
    if appearance.off_skin(found.skin, cheeks):  # the fitted head's texels sampled hair, beard or shadow
        found = appearance.Tones(cheeks, found.hair)
    drop_m = None
    unit = parts.levels.get("eye", 0.0) - parts.levels["shoulder"]  # the eye-to-shoulder length hair is measured in
    if photo.hair is not None:  # the photo's own hair colour beats the texels' cluster (blonde hair on a blonde wall)
        found = appearance.Tones(found.skin, photo.hair.colour.astype(np.float64))
        drop_m = appearance.back_drop(photo.hair.drop) * unit if unit > 0 else None
    shell = hair_shell(vertices, parts, tex, camera, photo.hair)
    appearance.paint_head(colour, known, seen, facing, tex.part, tex.height, eye, found, drop_m, made,
                          hat=photo.hair.hat if photo.hair is not None else None, shell=shell)
    on_garment = tex.garment > 0.5
    bared = appearance.bare_limbs(colour, known, tex.part, on_garment, category, found, made)
    g_colour, took = geo.garment_colour, geo.took
    from_garment = on_garment & ~seen if worn_in_photo else on_garment
    colour[from_garment] = g_colour[from_garment]
    made[on_garment] = 0.0  # the garment's own look (its photo, its fabric tile) is not made up
    known |= on_garment
    if photo.hair is not None and eye is not None and drop_m is not None:  # long hair falls over the back
        appearance.paint_long_hair(colour, known, seen, facing, tex.part, tex.height, tex.points[:, 0], eye,
                                   photo.hair.colour, drop_m, photo.hair.half_width * unit, made,
                                   hat=photo.hair.hat is not None)
    made = np.where(known, made, 1.0)
    filled = np.zeros(len(known), dtype=bool)
    if texture_made:  # photo.png's render takes only the garment's texels (and the fill's colours at its edge)
        legs_bare = appearance.legs_end_bare(colour, seen, tex.part, tex.height, found.skin)
        filled = fill_across_parts(body, camera, category, parts, tex, colour, known, on_garment, found.skin,
                                   legs_bare, atlas_size)
    atlas, known_grid, garment_grid = _assemble(tex, colour, known | filled, on_garment, atlas_size)
    atlas = fill_unknown(atlas, known_grid)
    if texture_made:
        atlas = texture_unseen(atlas, tex, ~on_garment & known & (made < 0.5), made, camera, facing, found.hair,
                               found.skin)
    offsets = ease_offsets(parts, weight, ease_cm_by_region)
    dressed = vertices + vertex_normals(vertices, faces) * offsets[:, None]
    if shell is not None and photo.hair is not None and eye is not None:  # the hair's volume: a shell round the head
        dressed += volume_offsets(vertices, parts.height, parts.label == appearance.HEAD, camera_position(camera),
                                  eye, photo.hair.volume * unit, photo.hair.volume_top * unit)
    front = on_garment & (facing > 0)
    seen_grid = np.zeros(atlas_size * atlas_size, dtype=bool)
    seen_grid[tex.index[seen]] = True
    made_grid = np.zeros(atlas_size * atlas_size, dtype=np.float32)
    made_grid[tex.index] = np.where(on_garment, 0.0, np.clip(made, 0.0, 1.0))
    return DressedBody(
        vertices=dressed.astype(np.float32), atlas=atlas, garment_texels=garment_grid,
        garment_vertices=weight > 0.5, coverage=float(took[front].mean()) if front.any() else 0.0,
        seen=float(seen.mean()) if len(seen) else 0.0, sleeve_m=sleeve_m, bared_limbs=bared,
        vertex_part=parts.label, skin=found.skin, seen_texels=seen_grid.reshape(atlas_size, atlas_size),
        made_up=float(made[~on_garment].mean()) if (~on_garment).any() else 0.0,
        made_texels=made_grid.reshape(atlas_size, atlas_size),
    )


def hair_shell(vertices: np.ndarray, parts: regions.BodyParts, tex: Texels, camera: Camera,
               found: appearance.Hair | None) -> np.ndarray | None:
    """(N,) each texel's share of the hair's volume (`pipeline.fitting.hair`), 0 off the head; None when the photo's
    hair lies on the skull (or there is no eye level to place it by)."""
    eye, unit = parts.levels.get("eye"), parts.levels.get("eye", 0.0) - parts.levels["shoulder"]
    if found is None or eye is None or unit <= 0 or max(found.volume, found.volume_top) <= 0:
        return None
    centre = skull_centre(vertices, parts.height, parts.label == appearance.HEAD, eye)
    if centre is None:
        return None
    share = shell_share(tex.points, tex.height, centre, camera_position(camera), eye, found.volume * unit)
    return np.where(tex.part == appearance.HEAD, share, 0.0)


def atlas_nearest(tex: Texels, known: np.ndarray, size: int) -> np.ndarray:
    """(N,) the texel (an index into `tex`) nearest each texel in the atlas among the `known` ones: `fill_unknown`'s
    source (itself where it is known)."""
    grid = np.zeros(size * size, dtype=bool)
    grid[tex.index[known]] = True
    if not grid.any():
        return np.arange(len(tex.index))
    of_texel = np.full(size * size, -1, dtype=np.int64)
    of_texel[tex.index] = np.arange(len(tex.index))
    return of_texel[nearest_known(grid.reshape(size, size))[1][tex.index]]


def fill_across_parts(body: BodyMesh, camera: Camera, category: str, parts: regions.BodyParts, tex: Texels,
                      colour: np.ndarray, known: np.ndarray, on_garment: np.ndarray, skin: np.ndarray | None,
                      legs_bare: bool, size: int) -> np.ndarray:
    """In place: the unknown texels that the atlas's nearest known texel would fill from another body part (the
    UV layout's islands border other parts': the back of a calf borders the scalp) or from the garment (a lilac
    band under a new top's hem), and those past the photo's frame taken for bare skin (`bare_past_frame`), take
    their colours along the body's surface instead (`pipeline.fitting.surface_fill`), from the known texels off
    the garment. Returns (N,) the texels filled; the rest of the unknown ones are left to `fill_unknown`."""
    faces = np.asarray(body.faces, dtype=np.int64)
    _, tri, bary = uv_raster(body.uvs, body.face_uvs, size)
    corners = faces[tri] if tex.corners is None else tex.corners
    bare = bare_past_frame(body, camera, category, parts.label, legs_bare)
    on_bare = bare[corners[np.arange(len(tri)), bary.argmax(axis=1)]]
    nearest = atlas_nearest(tex, known, size)
    todo = ~known & ((tex.part[nearest] != tex.part) | on_garment[nearest] | on_bare)
    return surface_fill.fill_on_surface(colour, ~todo, known & ~on_garment, corners, bary, np.asarray(body.vertices),
                                        parts.height, faces, parts.label, skin, bare)


def bare_past_frame(body: BodyMesh, camera: Camera, category: str, part: np.ndarray, legs_bare: bool
                    ) -> np.ndarray:
    """(V,) bool: the vertices past the photo's frame that are taken for bare skin: those of the limbs the garment
    replaces (their old clothes would turn to skin), and the legs and feet when the legs the photo shows end in
    skin (`legs_bare`: shorts, a skirt's hem). Trousers cut by the frame go on in their colour."""
    bare = np.isin(part, appearance.REPLACED[category])
    if legs_bare:
        bare |= np.isin(part, appearance.LEGS + (regions.PARTS.index("foot"),))
    return bare & outside_frame(camera, body.vertices)


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
