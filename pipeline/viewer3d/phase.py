"""Phase 4, viewer3d: fitting's dressed body and 8 views -> the textured GLB (model.glb), which it publishes.

Where the 8 angles are atlas.png's own renders (views.json `from_atlas`: the CPU path, nothing repainted them),
the GLB takes atlas.png itself: baking the renders back would give the same albedo, a little softer, for ~0.8 s.
Otherwise the texture is baked from the angles (`pipeline.viewer3d.bake`): each texel of the UV atlas takes the
views that see it best, with their rendered light divided out, blended across seams; what no view sees (under
the arms, the soles, the top of the head) keeps fitting's dressing atlas (atlas.png). So the 3D model shows
what the angles show once a generative backend repaints them. The phase's data records the texture's source,
and for a bake the share of texels the views see and its seconds.

With a MeshBuilder (the `gpu` profile's multi-view shape model), the mesh itself is rebuilt from the views
(`pipeline.viewer3d.rebuild`): a skirt, a loose garment and hair get geometry, and the views are baked onto the
rebuilt mesh's own UVs (nothing falls back to the dressing atlas, whose UVs are the body's). A rebuilt mesh
that the model could not produce or that does not match the views' silhouettes is declined and the body kept;
the phase's data says which (`mesh`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.backends.protocols import MeshBuilder
from pipeline.codec import decode_rgb
from pipeline.errors import PhaseUnavailable
from pipeline.geometry import BodyMesh, Camera, read_views_json
from pipeline.phase_api import PhaseIO, PhaseResult, PhaseTask
from pipeline.render.shade import Lighting
from pipeline.viewer3d.bake import bake_views
from pipeline.viewer3d.glb import glb_summary, textured_glb
from pipeline.viewer3d.rebuild import rebuild

ATLAS_SIZE = 1024


@dataclass(frozen=True)
class Viewer3dBackends:
    mesh_builder: MeshBuilder | None = None  # rebuilds the mesh from the views (the gpu profile); None: the body


def build_viewer(task: PhaseTask, io_: PhaseIO, backends: Viewer3dBackends) -> PhaseResult:
    builder = backends.mesh_builder
    dressed = BodyMesh.from_npz(io_.read_upstream("fitting", "dressed.npz"))
    mesh = (dressed.vertices, dressed.faces, dressed.uvs, dressed.face_uvs)
    atlas = decode_rgb(io_.read_upstream("fitting", "atlas.png"))
    cameras, lighting, from_atlas = read_views_json(io_.read_upstream("fitting", "views.json"))
    if builder is None and from_atlas:  # the angles are atlas.png's own renders: baking them back gives it back
        return textured(io_, mesh, atlas, {"source": "atlas.png (the angles are its renders)"}, {"status": "body"},
                        {"texture": "fitting's atlas 1"})
    views = read_views(io_, cameras)
    mesh_record: dict[str, object] = {"status": "body"}
    fallback: np.ndarray | None = atlas
    if builder is not None:
        start = time.perf_counter()
        try:
            rebuilt = rebuild(builder, views, dressed.vertices, dressed.faces)
        except ImportError as error:  # a deployment without the model's packages: the job waits, nothing is lost
            raise PhaseUnavailable(task.phase, f"its multi-view 3D model ({builder.name}) cannot import its "
                                   f"packages ({error}): install the GPU image's packages (docs/gpu.md), or "
                                   "run profile cpu") from error
        mesh_record = rebuilt.record | {"seconds": round(time.perf_counter() - start, 3)}
        if rebuilt.mesh is not None:
            mesh, fallback = rebuilt.mesh.parts(), None
    start = time.perf_counter()
    baked = bake_views(*mesh, list(views.values()), view_lighting(lighting), size=atlas_size(fallback),
                       fallback_atlas=fallback)
    texture = {"source": "the angles, back-projected", "seen_share": round(baked.seen_share, 4),
               "bake_s": round(time.perf_counter() - start, 3),
               "main_view_texels": dict(zip(views, baked.main_view_texels, strict=True))}
    mesh_backend = {"mesh": f"{builder.name} {builder.version}"} if builder is not None else {}
    return textured(io_, mesh, baked.atlas, texture, mesh_record,
                    {"texture": "multi-view back-projection 1"} | mesh_backend)


def textured(io_: PhaseIO, mesh: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], atlas: np.ndarray,
             texture: dict[str, object], mesh_record: dict[str, object], backends: dict[str, str]) -> PhaseResult:
    """model.glb of `mesh` with `atlas`, and the phase's record."""
    model = textured_glb(*mesh, atlas)
    io_.write("model.glb", model, "model/gltf-binary")
    return PhaseResult(data={"glb": glb_summary(model), "texture": texture, "mesh": mesh_record},
                       backends={"glb": "dropfit glTF writer 1"} | backends)


def atlas_size(fallback: np.ndarray | None) -> tuple[int, int]:
    """(width, height) of the baked atlas: ATLAS_SIZE wide, as tall as fitting's atlas is for its width (a skirt's
    strip under the body's atlas makes it taller; fitting's dressed UVs are laid out for that shape)."""
    if fallback is None:
        return ATLAS_SIZE, ATLAS_SIZE
    return ATLAS_SIZE, max(1, round(ATLAS_SIZE * fallback.shape[0] / fallback.shape[1]))


def read_views(io_: PhaseIO, cameras: list[tuple[int, Camera]]) -> dict[str, tuple[np.ndarray, Camera]]:
    """Fitting's angles keyed "000".."315" as (image, camera)."""
    return {f"{angle:03d}": (decode_rgb(io_.read_upstream("fitting", f"angles/{angle:03d}.png")), camera)
            for angle, camera in cameras}


def view_lighting(light: dict[str, Any]) -> Lighting:
    """The light the angles were rendered with, as views.json records it."""
    x, y, z = (float(v) for v in light["direction"])
    return Lighting(ambient=float(light["ambient"]), diffuse=float(light["diffuse"]), direction=(x, y, z))

