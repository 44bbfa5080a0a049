"""Phase 4, viewer3d: fitting -> the files a job publishes (the textured GLB, the 8 angles, the contact sheet).

The GLB's texture is baked from the 8 angles themselves (`pipeline.viewer3d.bake`): each texel of the UV
atlas takes the views that see it best, with their rendered light divided out, blended across seams; what no
view sees (under the arms, the soles, the top of the head) keeps fitting's dressing atlas (atlas.png). So the
3D model shows what the angles show, also once a generative backend repaints the views. The phase's data
records the share of texels the views see and the bake's seconds. The publish step copies these files under
results/{job_id}/ and writes manifest.json last.

With a MeshBuilder (the `gpu` profile's multi-view shape model), the mesh itself is rebuilt from the views
(`pipeline.viewer3d.rebuild`): a skirt, a loose garment and hair get geometry, and the views are baked onto the
rebuilt mesh's own UVs (nothing falls back to the dressing atlas, whose UVs are the body's). A rebuilt mesh
that the model could not produce or that does not match the views' silhouettes is declined and the body kept;
the phase's data says which (`mesh`).
"""

from __future__ import annotations

import io
import json
import time

import numpy as np
from PIL import Image

from pipeline.avatar.encode import camera_from_dict, load_npz
from pipeline.backends.protocols import Camera, MeshBuilder
from pipeline.errors import PhaseUnavailable
from pipeline.phase_api import PhaseIO, PhaseResult, PhaseTask
from pipeline.render.shade import Lighting
from pipeline.viewer3d.bake import bake_views
from pipeline.viewer3d.glb import glb_summary, textured_glb
from pipeline.viewer3d.rebuild import rebuild

ATLAS_SIZE = 1024


def build_viewer(task: PhaseTask, io_: PhaseIO, builder: MeshBuilder | None = None) -> PhaseResult:
    dressed = load_npz(io_.read_upstream("fitting", "dressed.npz"))
    mesh = (dressed["vertices"], dressed["faces"], dressed["uvs"], dressed["face_uvs"])
    fallback: np.ndarray | None = rgb(io_.read_upstream("fitting", "atlas.png"))
    angles, views, lighting = read_views(io_)
    mesh_record: dict[str, object] = {"status": "body"}
    if builder is not None:
        start = time.perf_counter()
        try:
            rebuilt = rebuild(builder, views, dressed["vertices"], dressed["faces"])
        except ImportError as error:  # a deployment without the model's packages: the job waits, nothing is lost
            raise PhaseUnavailable(task.phase, f"its multi-view 3D model ({builder.name}) cannot import its "
                                   f"packages ({error}): install the GPU image's packages (docs/gpu.md), or "
                                   "run profile cpu") from error
        mesh_record = rebuilt.record | {"seconds": round(time.perf_counter() - start, 3)}
        if rebuilt.mesh is not None:
            mesh, fallback = rebuilt.mesh.parts(), None
    start = time.perf_counter()
    baked = bake_views(*mesh, list(views.values()), lighting, size=ATLAS_SIZE, fallback_atlas=fallback)
    bake_s = time.perf_counter() - start
    model = textured_glb(*mesh, baked.atlas)
    io_.write("model.glb", model, "model/gltf-binary")
    for angle, png in angles.items():
        io_.write(f"angles/{angle}.png", png, "image/png")
    io_.write("contact_sheet.jpg", io_.read_upstream("fitting", "contact_sheet.jpg"), "image/jpeg")
    io_.write("fit_report.json", io_.read_upstream("fitting", "fit_report.json"), "application/json")
    io_.write("fitting.json", io_.read_upstream("fitting", "fitting.json"), "application/json")
    texture = {"seen_share": round(baked.seen_share, 4), "bake_s": round(bake_s, 3),
               "main_view_texels": dict(zip(views, baked.main_view_texels, strict=True))}
    mesh_backend = {"mesh": f"{builder.name} {builder.version}"} if builder is not None else {}
    return PhaseResult(data={"glb": glb_summary(model), "texture": texture, "mesh": mesh_record},
                       backends={"glb": "dropfit glTF writer 1", "texture": "multi-view back-projection 1"}
                       | mesh_backend)


def read_views(io_: PhaseIO) -> tuple[dict[str, bytes], dict[str, tuple[np.ndarray, Camera]], Lighting]:
    """Fitting's angles keyed "000".."315": their PNG bytes, their (image, camera) views, and the light they were
    rendered with (views.json)."""
    record = json.loads(io_.read_upstream("fitting", "views.json"))
    angles: dict[str, bytes] = {}
    views: dict[str, tuple[np.ndarray, Camera]] = {}
    for view in record["views"]:
        angle = f"{view['angle_deg']:03d}"
        angles[angle] = io_.read_upstream("fitting", f"angles/{angle}.png")
        views[angle] = (rgb(angles[angle]), camera_from_dict(view["camera"]))
    light = record["lighting"]
    return angles, views, Lighting(ambient=light["ambient"], diffuse=light["diffuse"],
                                   direction=tuple(light["direction"]))


def rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
