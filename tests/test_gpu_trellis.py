"""The commercial-use mesh builder (TRELLIS.2-4B, pipeline/backends/gpu/trellis_mesh.py): what runs without its code.

TRELLIS.2's code is not on PyPI and runs only on CUDA (o_voxel, CuMesh and FlexGEMM are CUDA extensions built from
source, its sparse attention needs flash-attn or xformers), so no tiny random model can run here. What is tested:
the pre- and post-processing (plain numpy), the weights folder as pipeline.json lays it out (every file checked
before trellis2 is imported, so a missing one is never downloaded), the row and its build through
`PlannedBackends`, and that a deployment without the code gets the import error (viewer3d then waits as
unavailable). `test_the_real_pipeline_rebuilds_a_figure` runs where trellis2, CUDA and the pulled weights are
(`DROPFIT_REAL_WEIGHTS=DIR`), and skips saying which is missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.backends.gpu.trellis_mesh import (
    DINO_DIR,
    SHAPE_MODELS,
    TrellisMeshBuilder,
    conditioning_image,
    front_view,
    pipeline_args,
    shape_mesh,
    shape_model_paths,
)
from pipeline.backends.protocols import MESH_VIEW_TAGS, MeshBuilder, MeshRequest
from pipeline.backends.table import BACKENDS

TRELLIS2_MISSING = None if importlib.util.find_spec("trellis2") else (
    "trellis2 is not installed: it is not on PyPI and needs CUDA (docs/gpu.md, 'Commercial-safe photoreal stack')")
CHECKPOINTS = {  # pipeline.json's models, as microsoft/TRELLIS.2-4B names them
    "sparse_structure_flow_model": "ckpts/ss_flow_img_dit_1_3B_64_bf16",
    "sparse_structure_decoder": "microsoft/TRELLIS-image-large/ckpts/ss_dec_conv3d_16l8_fp16",
    "shape_slat_flow_model_512": "ckpts/slat_flow_img2shape_dit_1_3B_512_bf16",
    "shape_slat_flow_model_1024": "ckpts/slat_flow_img2shape_dit_1_3B_1024_bf16",
    "shape_slat_decoder": "ckpts/shape_dec_next_dc_f16c32_fp16",
    "tex_slat_decoder": "ckpts/tex_dec_next_dc_f16c32_fp16",  # named, not pulled: the adapter does not load it
}


def figure_view(width: int = 96, height: int = 160) -> np.ndarray:
    view = np.zeros((height, width, 4), dtype=np.uint8)
    view[20:150, 30:70] = (200, 60, 60, 255)
    view[22:40, 40:60] = (230, 190, 160, 255)  # a head
    return view


def request(views: dict[str, np.ndarray] | None = None) -> MeshRequest:
    return MeshRequest(views=views if views is not None else {tag: figure_view() for tag in MESH_VIEW_TAGS}, seed=3)


def trellis_folder(root: Path, *, skip: str | None = None) -> Path:
    """A weights folder laid out as `dropfit weights pull --only trellis2` lays it out, with empty checkpoints."""
    root.mkdir(parents=True, exist_ok=True)
    sampler = {"name": "FlowEulerGuidanceIntervalSampler", "args": {"sigma_min": 1e-5}, "params": {"steps": 12}}
    (root / "pipeline.json").write_text(json.dumps({"name": "Trellis2ImageTo3DPipeline", "args": {
        "models": CHECKPOINTS, "sparse_structure_sampler": sampler, "shape_slat_sampler": sampler,
        "shape_slat_normalization": {"mean": [0.0] * 32, "std": [1.0] * 32},
        "image_cond_model": {"name": "DinoV3FeatureExtractor",
                             "args": {"model_name": "facebook/dinov3-vitl16-pretrain-lvd1689m"}}}}))
    files = [f"{CHECKPOINTS[name]}.{ext}" for name in SHAPE_MODELS for ext in ("json", "safetensors")]
    for relative in [*files, f"{DINO_DIR}/config.json", f"{DINO_DIR}/model.safetensors"]:
        if relative != skip:
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text("{}")
    return root


# ---- preprocess ------------------------------------------------------------------------------------------------


def test_only_a_checked_front_view_is_used() -> None:
    assert np.array_equal(front_view(request()), figure_view())
    with pytest.raises(ValueError, match="front"):
        front_view(request({"back": figure_view()}))
    with pytest.raises(ValueError, match="RGBA"):
        front_view(request({"front": figure_view()[..., :3]}))
    with pytest.raises(ValueError, match="no subject"):
        front_view(request({"front": np.zeros((10, 10, 4), np.uint8)}))


def test_the_conditioning_image_is_the_square_around_the_subject_premultiplied_on_black() -> None:
    """TRELLIS.2's preprocess_image for an RGBA view (this output matched it on random views when written)."""
    view = np.zeros((200, 100, 4), np.uint8)
    view[40:160, 30:70] = (200, 100, 50, 255)  # opaque columns 30..69, rows 40..159
    view[100, 50, 3] = 102  # 40 % opaque: inside the box, premultiplied
    image = np.asarray(conditioning_image(view))
    assert image.shape == (118, 118, 3)  # a square of the opaque box's longer side (rounded to even)
    assert not image[:, :40].any() and not image[:, 80:].any()  # around the subject: black
    assert tuple(image[10, 45]) == (200, 100, 50) and tuple(image[60, 60]) == (80, 40, 20)
    big = np.zeros((3000, 1000, 4), np.uint8)
    big[100:2900, 200:800, 3] = 255
    assert max(conditioning_image(big).size) <= 1024  # scaled to 1024 a side first


# ---- postprocess -----------------------------------------------------------------------------------------------


def test_shape_mesh_drops_degenerate_faces_and_unused_vertices() -> None:
    vertices = np.arange(18, dtype=np.float64).reshape(6, 3)
    mesh = shape_mesh(vertices, np.array([[0, 2, 3], [1, 1, 4], [3, 2, 5]]))
    assert mesh.faces.dtype == np.int32 and mesh.vertices.dtype == np.float32
    assert mesh.faces.tolist() == [[0, 1, 2], [2, 1, 3]]
    assert mesh.vertices.tolist() == vertices[[0, 2, 3, 5]].tolist()
    assert shape_mesh(vertices, np.array([[1, 1, 2]])).empty


# ---- the weights folder ------------------------------------------------------------------------------------------


def test_the_shape_checkpoints_are_where_pipeline_json_says(tmp_path: Path) -> None:
    folder = trellis_folder(tmp_path / "trellis2")
    paths = shape_model_paths(folder, pipeline_args(folder))
    assert list(paths) == list(SHAPE_MODELS) and "tex_slat_decoder" not in paths
    assert paths["sparse_structure_decoder"] == folder / "microsoft/TRELLIS-image-large/ckpts/ss_dec_conv3d_16l8_fp16"


@pytest.mark.parametrize(("skip", "words"), [
    ("ckpts/shape_dec_next_dc_f16c32_fp16.safetensors", "shape_slat_decoder is missing"),
    ("microsoft/TRELLIS-image-large/ckpts/ss_dec_conv3d_16l8_fp16.json", "sparse_structure_decoder is missing"),
    (f"{DINO_DIR}/model.safetensors", "DINOv3"),
])
def test_a_missing_file_is_named_and_nothing_is_imported_or_downloaded(tmp_path: Path, skip: str, words: str) -> None:
    folder = trellis_folder(tmp_path / "trellis2", skip=skip)
    with pytest.raises(FileNotFoundError, match=words):
        TrellisMeshBuilder(folder, device="cpu").load()


def test_another_pipeline_is_refused(tmp_path: Path) -> None:
    folder = trellis_folder(tmp_path / "trellis2")
    config = json.loads((folder / "pipeline.json").read_text())
    (folder / "pipeline.json").write_text(json.dumps({**config, "name": "Trellis2TexturingPipeline"}))
    with pytest.raises(ValueError, match="Trellis2TexturingPipeline"):
        pipeline_args(folder)
    with pytest.raises(FileNotFoundError, match="pipeline.json"):
        pipeline_args(tmp_path / "nothing")


@pytest.mark.skipif(TRELLIS2_MISSING is None, reason="trellis2 is installed here: the import succeeds")
def test_without_the_code_the_builder_fails_with_the_import_error(tmp_path: Path) -> None:
    """A ModuleNotFoundError, which makes the viewer3d phase unavailable (the job waits) instead of failing it."""
    with pytest.raises(ModuleNotFoundError, match="trellis2"):
        TrellisMeshBuilder(trellis_folder(tmp_path / "trellis2"), device="cpu").load()


# ---- the row and its build ---------------------------------------------------------------------------------------


def test_its_row_allows_commercial_use_but_only_an_override_plans_it(tmp_path: Path) -> None:
    from pipeline.backends.config import ModelConfig
    from pipeline.backends.planned import PlannedBackends
    from pipeline.backends.weights import write_manifest

    row = BACKENDS["trellis2-4b"]
    assert BACKENDS.commercial_use(row.key) and row.gpu and row.profiles == ()
    assert all(BACKENDS.plan(p)["MeshBuilder"] != row.key for p in ("cpu", "gpu", "commercial-safe"))
    overrides = {"MeshBuilder": row.key}
    assert BACKENDS.plan("commercial-safe", overrides)["MeshBuilder"] == row.key  # the licence allows it
    weights = tmp_path / "weights"
    trellis_folder(weights / "trellis2")
    write_manifest(weights, ["trellis2"])
    builder = PlannedBackends(ModelConfig(profile="commercial-safe", backends=overrides, weights_dir=weights)
                              ).serving("MeshBuilder")
    checked: MeshBuilder = builder
    assert isinstance(builder, TrellisMeshBuilder) and isinstance(checked, MeshBuilder)
    assert builder.pipeline_type == "1024_cascade" and "TRELLIS.2-4B" in builder.version
    with pytest.raises(ValueError, match="pipeline_type"):
        TrellisMeshBuilder(weights, pipeline_type="2048")


# ---- the real model (opt-in) -----------------------------------------------------------------------------------


def real_weights_missing() -> str | None:
    if TRELLIS2_MISSING:
        return TRELLIS2_MISSING
    import torch

    if not torch.cuda.is_available():
        return "TRELLIS.2 runs only on CUDA"
    folder = os.environ.get("DROPFIT_REAL_WEIGHTS")
    return None if folder and (Path(folder) / "trellis2").is_dir() else "set DROPFIT_REAL_WEIGHTS to a pulled folder"


def test_the_real_pipeline_rebuilds_a_figure() -> None:
    missing = real_weights_missing()
    if missing:
        pytest.skip(missing)
    from pipeline.backends.weights import verify

    folder = verify(Path(os.environ["DROPFIT_REAL_WEIGHTS"]), "trellis2")
    mesh = TrellisMeshBuilder(folder).build_mesh(request())
    assert not mesh.empty and len(mesh.faces) <= 60000
    assert np.abs(mesh.vertices).max() <= 0.51  # TRELLIS.2's unit cube about the origin
