"""Phase 4, viewer3d: fitting -> the files a job publishes (the textured GLB, the 8 angles, the contact sheet).

The GLB carries the dressed body with its texture atlas. On the CPU path the 8 angles are rendered from that
very atlas, so the atlas is already what the views show; back-projecting edited views onto the mesh (per
texel, best-facing views, blended seams) is needed once a generative backend repaints the views, and is not
in this build yet. The publish step copies these files under results/{job_id}/ and writes manifest.json last.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from pipeline.avatar.encode import load_npz
from pipeline.phase_api import PhaseIO, PhaseResult, PhaseTask
from pipeline.render.views import ANGLES_DEG
from pipeline.viewer3d.glb import glb_summary, textured_glb


def build_viewer(task: PhaseTask, io_: PhaseIO) -> PhaseResult:
    dressed = load_npz(io_.read_upstream("fitting", "dressed.npz"))
    with Image.open(io.BytesIO(io_.read_upstream("fitting", "atlas.png"))) as image:
        atlas = np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    model = textured_glb(dressed["vertices"], dressed["faces"], dressed["uvs"], dressed["face_uvs"], atlas)
    io_.write("model.glb", model, "model/gltf-binary")
    for angle in ANGLES_DEG:
        name = f"angles/{angle:03d}.png"
        io_.write(name, io_.read_upstream("fitting", name), "image/png")
    io_.write("contact_sheet.jpg", io_.read_upstream("fitting", "contact_sheet.jpg"), "image/jpeg")
    io_.write("fit_report.json", io_.read_upstream("fitting", "fit_report.json"), "application/json")
    io_.write("fitting.json", io_.read_upstream("fitting", "fitting.json"), "application/json")
    return PhaseResult(data={"glb": glb_summary(model)}, backends={"glb": "dropfit glTF writer 1"})
