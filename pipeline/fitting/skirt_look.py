"""The skirt shell on the dressed body: its texture from the garment photo, the legs it covers hidden, and one
mesh and one atlas for the views, photo.png and the GLB (`pipeline.fitting.skirt` builds the shell).

The skirt's texels are a strip of SKIRT_ROWS rows under the body's S x S atlas (the atlas grows to S + SKIRT_ROWS
rows, the body's UVs squeezed into its top S rows, texel for texel as before), so everything downstream still
draws one textured mesh: the render, the bake, the GLB writer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pipeline.fitting import regions, skirt
from pipeline.fitting.dress import (
    FRONT_FACING,
    DressedBody,
    GarmentLook,
    PersonPhoto,
    Texels,
    _eroded_alpha,
    fabric_tile,
    project,
    sample_image,
    tile_colours,
)
from pipeline.fitting.kept_skirt import kept_plan
from pipeline.fitting.worn import Worn
from pipeline.geometry import BodyMesh, Camera, PosedBody
from pipeline.render.shade import vertex_normals
from pipeline.render.views import camera_position

SKIRT_ROWS_SHARE = 3 / 8  # of the atlas's side: the skirt strip's rows
SIDE_SHADE = 0.2  # the shell's sides, edge-on to the photo's camera, are this much darker than its front
FOLDS, FOLD_SHADE = 11, 0.06  # folds round the skirt, and their light's amplitude at the hem
_THIGH = 4


@dataclass(frozen=True)
class SkirtTexels:
    """The skirt strip's texels, row-major (rows, S): points, normals, and where along the rings each lies."""

    points: np.ndarray  # (N, 3)
    normals: np.ndarray  # (N, 3) unit
    ring: np.ndarray  # (N,) fractional ring index (0 at the hip line)
    around: np.ndarray  # (N,) 0..1 round the ring from the back


def _bilinear(grid: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(N, C) float64 values of an (R, A, C) grid (C <= 4) at fractional (rows, cols), clamped at its borders."""
    import cv2

    n, width = len(rows), 1024  # remap's maps must stay under 32767 rows
    xy = np.zeros((-(-n // width) * width, 2), dtype=np.float32)
    xy[:n, 0], xy[:n, 1] = cols, rows
    out = cv2.remap(np.ascontiguousarray(grid, np.float32), xy.reshape(-1, width, 2), None, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(len(xy), -1)[:n].astype(np.float64)


def skirt_texels(mesh: skirt.SkirtMesh, width: int, rows: int) -> SkirtTexels:
    """Every texel of the (rows, width) strip on the shell: texel centres through the shell's UVs."""
    rings, cols = mesh.grid.shape[:2]
    r, c = np.meshgrid(np.arange(rows), np.arange(width), indexing="ij")
    ring = ((r.ravel() + 0.5) / rows) * (rings - 1)
    around = ((c.ravel() + 0.5) / width) * (cols - 1)
    normals = vertex_normals(mesh.vertices, mesh.faces).reshape(rings, cols, 3)
    seam = normals[:, 0] + normals[:, -1]  # the seam's two copies share one normal
    normals[:, 0] = normals[:, -1] = seam / np.maximum(np.linalg.norm(seam, axis=1, keepdims=True), 1e-12)
    n = _bilinear(normals, ring, around)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return SkirtTexels(_bilinear(mesh.grid, ring, around), n, ring, around / (cols - 1))


def skirt_colours(tex: SkirtTexels, mesh: skirt.SkirtMesh, plan: skirt.SkirtPlan, outline: skirt.Outline,
                  camera: Camera, look: GarmentLook) -> np.ndarray:
    """(N, 3) float colours: the cutout on the front, the same column on the back, the fabric tile elsewhere."""
    cutout = np.asarray(look.cutout)
    rgba = _eroded_alpha(cutout)
    plain = Texels(np.arange(len(tex.ring)), tex.points, tex.normals, np.zeros(len(tex.ring), np.int64),
                   np.ones(len(tex.ring)), tex.points[:, 2])
    colour = tile_colours(plain, fabric_tile(cutout, look.texture))
    ring_x = project(camera, mesh.grid.reshape(-1, 3))[0][:, 0].reshape(mesh.grid.shape[:2])
    low, high = np.interp(tex.ring, np.arange(len(ring_x)), ring_x.min(axis=1)), np.interp(
        tex.ring, np.arange(len(ring_x)), ring_x.max(axis=1))
    x = project(camera, tex.points)[0][:, 0]
    row = plan.row(tex.points[:, 2])
    left, right = outline.edges(row)
    inset = np.minimum(1.0 + round(0.01 * max(cutout.shape[:2])), (right - left) / 4)  # inside the eroded edge
    left, right = left + inset, right - inset
    col = left + np.clip((x - low) / np.maximum(high - low, 1e-6), 0.0, 1.0) * (right - left)
    sampled = sample_image(rgba, np.column_stack([col + 0.5, row + 0.5]))
    usable = sampled[:, 3] > 127
    towards = camera_position(camera) - tex.points
    front = np.einsum("nc,nc->n", tex.normals, towards) / np.linalg.norm(towards, axis=1) > FRONT_FACING
    if look.print_box is not None:  # a placed print stays on the front (dress.py's back rule)
        px0, py0, px1, py1 = look.print_box
        on_print = (col >= px0) & (col < px1) & (row >= py0) & (row < py1)
        usable &= front | ~on_print
    colour[usable] = sampled[usable, :3]
    return colour * drape(tex, mesh, camera)[:, None]


def drape(tex: SkirtTexels, mesh: skirt.SkirtMesh, camera: Camera) -> np.ndarray:
    """(N,) light on the shell, mean about 1: the photo's light falling off as the surface turns edge-on to its
    camera (its sides darker, up to SIDE_SHADE), and soft folds hanging from the hips (FOLDS round the ring, their
    depth growing to FOLD_SHADE at the hem), so a plain skirt is not one flat colour round the legs."""
    forward = np.asarray(camera.rotation, np.float64)[2]
    facing = np.abs(tex.normals @ forward)
    down = tex.ring / max(mesh.grid.shape[0] - 1, 1)
    folds = np.sin(2 * np.pi * FOLDS * tex.around)
    return (1.0 - SIDE_SHADE * (1.0 - facing)) * (1.0 + FOLD_SHADE * down * folds)


def covered_faces(body_vertices: np.ndarray, faces: np.ndarray, part: np.ndarray, mesh: skirt.SkirtMesh) -> np.ndarray:
    """(F,) bool: the body's torso and leg faces wholly inside the shell, below its top ring (hidden)."""
    v = np.asarray(body_vertices, np.float64)
    top, hem = mesh.centres[0, 2], mesh.centres[-1, 2]
    rings, cols = mesh.grid.shape[:2]
    ring = (top - v[:, 2]) / max(top - hem, 1e-6) * (rings - 1)
    between = (ring > 0.5) & (ring < rings - 1)
    centre = np.stack([np.interp(ring, np.arange(rings), mesh.centres[:, k]) for k in range(2)], axis=1)
    offset = v[:, :2] - centre
    start = np.arctan2(*(mesh.grid[0, 0, :2] - mesh.centres[0, :2])[::-1])
    around = ((np.arctan2(offset[:, 1], offset[:, 0]) - start) % (2 * np.pi)) / (2 * np.pi) * (cols - 1)
    radius = np.linalg.norm(mesh.grid[..., :2] - mesh.centres[:, None, :2], axis=2)
    limit = _bilinear(radius[..., None], np.clip(ring, 0, rings - 1), around)[:, 0]
    inside = between & (np.linalg.norm(offset, axis=1) < limit) & np.isin(part, skirt.SKIRT_PARTS)
    return inside[np.asarray(faces)].all(axis=1)


def combined(dressed: DressedBody, body: BodyMesh, mesh: skirt.SkirtMesh, strip: np.ndarray,
             record: dict[str, object], garment: bool = True) -> DressedBody:
    """The dressed body with the shell as one mesh and one atlas (the skirt's strip under the body's)."""
    size = dressed.atlas.shape[0]
    rows = strip.shape[0]
    total = size + rows
    assert dressed.vertex_part is not None
    hidden = covered_faces(dressed.vertices, body.faces, dressed.vertex_part, mesh)
    count, uv_count = len(dressed.vertices), len(body.uvs)
    body_uv = np.asarray(body.uvs, np.float64).copy()
    body_uv[:, 1] = 1.0 - (1.0 - body_uv[:, 1]) * size / total
    skirt_uv = mesh.uvs.copy()
    skirt_uv[:, 1] = skirt_uv[:, 1] * rows / total
    faces = np.concatenate([np.asarray(body.faces, np.int64)[~hidden], mesh.faces + count])
    face_uvs = np.concatenate([np.asarray(body.face_uvs, np.int64)[~hidden], mesh.faces + uv_count])
    seen = dressed.seen_texels if dressed.seen_texels is not None else np.zeros((size, size), bool)
    return replace(
        dressed, vertices=np.concatenate([dressed.vertices, mesh.vertices.astype(np.float32)]),
        atlas=np.concatenate([dressed.atlas, strip]),
        garment_texels=np.concatenate([dressed.garment_texels, np.full((rows, size), garment)]),
        garment_vertices=np.concatenate([dressed.garment_vertices, np.full(len(mesh.vertices), garment)]),
        vertex_part=np.concatenate([dressed.vertex_part, np.full(len(mesh.vertices), _THIGH)]),
        seen_texels=np.concatenate([seen, np.zeros((rows, size), bool)]),
        made_texels=None if dressed.made_texels is None else np.concatenate(
            [dressed.made_texels, np.zeros((rows, size), np.float32)]),  # the shell: the garment's or the photo's
        faces=faces, uvs=np.concatenate([body_uv, skirt_uv]).astype(np.float32), face_uvs=face_uvs,
        skirt=record | {"hidden_body_faces": int(hidden.sum())})


@dataclass(frozen=True)
class Skirt:
    """A skirt shell made once per job (it depends on the body, the garment and the camera, not on the photo's
    colours), put on each dressing of the job; `mesh` None: no shell, `record` says why."""

    record: dict[str, object]
    mesh: skirt.SkirtMesh | None = None
    strip: np.ndarray | None = None  # (rows, S, 3) uint8: the shell's texture


@dataclass(frozen=True)
class Planned:
    """What the dressing needs to know before it paints: the skirt's plan and outline, or why there is none."""

    record: dict[str, object]
    plan: skirt.SkirtPlan | None = None
    outline: skirt.Outline | None = None

    @property
    def heights(self) -> tuple[float, float] | None:
        """World z of the cutout's first and last garment rows (`GarmentLook.heights`)."""
        if self.plan is None or self.outline is None:
            return None
        return self.plan.z_at(self.outline.top), self.plan.z_at(self.outline.bottom)


def plan_for(body: PosedBody, camera: Camera, look: GarmentLook) -> Planned:
    """Whether the garment gets a shell and where (see `pipeline.fitting.skirt`), from the posed body alone."""
    alpha = np.asarray(look.cutout)[..., 3]
    if not skirt.is_skirted(alpha, look.category):
        return Planned({"status": "none", "why": "the garment is not a skirt or a dress"})
    standing = skirt.upright(body.keypoints_3d)
    if standing < skirt.MIN_UPRIGHT:
        return Planned({"status": "painted", "upright": round(standing, 3),
                        "why": "seated or crouching: the skirt is painted on the legs"})
    outline = skirt.garment_outline(alpha)
    vertices = np.asarray(body.vertices, np.float64)
    rest = np.asarray(body.rest_vertices, np.float64)
    part = regions.body_parts(rest, regions.rest_keypoints(vertices, rest, body.keypoints_3d)).label
    plan = None if outline is None else skirt.plan_skirt(outline, look.category, vertices, part, body.keypoints_3d,
                                                         camera)
    if plan is None:
        return Planned({"status": "painted", "why": "no hem below the hips: painted on the legs"})
    return Planned({"status": "shell", "upright": round(standing, 3)}, plan, outline)


def make_skirt(dressed: DressedBody, camera: Camera, look: GarmentLook, planned: Planned) -> Skirt:
    """The shell round the dressed body's legs as `planned`, textured from the garment photo."""
    plan, outline = planned.plan, planned.outline
    assert dressed.vertex_part is not None
    mesh = None if plan is None or outline is None else skirt.skirt_rings(plan, outline, dressed.vertices,
                                                                          dressed.vertex_part, camera)
    if mesh is None or plan is None or outline is None:
        return Skirt(planned.record if plan is None else {"status": "painted", "why": "no body at the hips"})
    size = dressed.atlas.shape[0]
    rows = max(8, round(size * SKIRT_ROWS_SHARE))
    tex = skirt_texels(mesh, size, rows)
    strip = np.clip(skirt_colours(tex, mesh, plan, outline, camera, look) + 0.5, 0, 255).astype(np.uint8)
    hem_width = skirt.front_width(mesh.grid[-1], skirt.horizontal_right(camera))
    return Skirt(planned.record | {"length_m": round(plan.top_z - plan.hem_z, 3), "hem_width_m": round(hem_width, 3)},
                 mesh, strip.reshape(rows, size, 3))


def kept_skirt(dressed: DressedBody, body: PosedBody, photo: PersonPhoto, worn: Worn) -> Skirt | None:
    """The person's own skirt or dress below the knees, kept under a new top, as a shell textured from the photo
    (`pipeline.fitting.kept_skirt`); None when `worn` (what photo.png found the person wears below the top) is not
    a long skirt (trousers, a short skirt, a coat over trousers) or the person does not stand."""
    if not worn.long_skirt or worn.hem_row is None or skirt.upright(body.keypoints_3d) < skirt.MIN_UPRIGHT:
        return None
    assert dressed.vertex_part is not None
    found = kept_plan(photo, body.keypoints_2d, body.keypoints_3d, dressed.vertices, dressed.vertex_part,
                      worn.hem_row)
    if found is None:
        return None
    plan, outline, look = found
    made = make_skirt(dressed, photo.camera, look, Planned({"status": "kept", "upright": round(
        skirt.upright(body.keypoints_3d), 3), "why": "the person's own skirt, kept under the new top"}, plan, outline))
    return made if made.mesh is not None else None


def put_on(dressed: DressedBody, body: BodyMesh, made: Skirt) -> DressedBody:
    """The dressed body wearing the shell (one mesh, one atlas), or as it was with the record of why not. A kept
    skirt (the person's own) is not the new garment: its vertices and texels are not the garment's."""
    if made.mesh is None or made.strip is None or made.strip.shape[1] != dressed.atlas.shape[1]:
        return replace(dressed, skirt=made.record)
    return combined(dressed, body, made.mesh, made.strip, made.record, garment=made.record.get("status") != "kept")
