"""Phase 4, viewer3d: fitting's dressed body and 8 views -> the textured GLB (model.glb), which it publishes.

The GLB's texture is baked from the 8 angles themselves (`pipeline.viewer3d.bake`): each texel of the UV
atlas takes the views that see it best, with their rendered light divided out, blended across seams; what no
view sees (under the arms, the soles, the top of the head) keeps fitting's dressing atlas (atlas.png). So the
3D model shows what the angles show, also once a generative backend repaints the views. The phase's data
records the share of texels the views see and the bake's seconds.

With a MeshBuilder (the `gpu` profile's multi-view shape model), the mesh itself is rebuilt from the views
(`pipeline.viewer3d.rebuild`): a skirt, a loose garment and hair get geometry, and the views are baked onto the
rebuilt mesh's own UVs (nothing falls back to the dressing atlas, whose UVs are the body's). A rebuilt mesh
that the model could not produce or that does not match the views' silhouettes is declined and the body kept;
the phase's data says which (`mesh`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

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
    fallback: np.ndarray | None = decode_rgb(io_.read_upstream("fitting", "atlas.png"))
    views, lighting = read_views(io_)
    mesh_record: dict[str, object] = {"status": "body"}
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
    size = atlas_size(fallback)
    baked = bake_views(*mesh, list(views.values()), lighting, size=size, fallback_atlas=fallback)
    bake_s = time.perf_counter() - start
    model = textured_glb(*mesh, baked.atlas)
    io_.write("model.glb", model, "model/gltf-binary")
    texture = {"seen_share": round(baked.seen_share, 4), "bake_s": round(bake_s, 3),
               "main_view_texels": dict(zip(views, baked.main_view_texels, strict=True))}
    mesh_backend = {"mesh": f"{builder.name} {builder.version}"} if builder is not None else {}
    return PhaseResult(data={"glb": glb_summary(model), "texture": texture, "mesh": mesh_record},
                       backends={"glb": "dropfit glTF writer 1", "texture": "multi-view back-projection 1"}
                       | mesh_backend)


def atlas_size(fallback: np.ndarray | None) -> tuple[int, int]:
    """(width, height) of the baked atlas: ATLAS_SIZE wide, as tall as fitting's atlas is for its width (a skirt's
    strip under the body's atlas makes it taller; fitting's dressed UVs are laid out for that shape)."""
    if fallback is None:
        return ATLAS_SIZE, ATLAS_SIZE
    return ATLAS_SIZE, max(1, round(ATLAS_SIZE * fallback.shape[0] / fallback.shape[1]))


def read_views(io_: PhaseIO) -> tuple[dict[str, tuple[np.ndarray, Camera]], Lighting]:
    """Fitting's angles keyed "000".."315" as (image, camera), and the light they were rendered with (views.json)."""
    cameras, light = read_views_json(io_.read_upstream("fitting", "views.json"))
    views = {f"{angle:03d}": (decode_rgb(io_.read_upstream("fitting", f"angles/{angle:03d}.png")), camera)
             for angle, camera in cameras}
    direction = tuple(float(v) for v in light["direction"])
    return views, Lighting(ambient=light["ambient"], diffuse=light["diffuse"],
                           direction=(direction[0], direction[1], direction[2]))
