"""The multi-view 3D adapter (pipeline/backends/gpu/hunyuan_mv.py): its plain pre- and post-processing, and the
real hy3dgen pipeline on a tiny random-weight Hunyuan3D-2mv built from a config (tests/tiny_hunyuan.py), whose
image encoder has the real checkpoint's transformers-4 DINOv2 names. On the CPU in float32, or on CUDA in float16
under DROPFIT_TEST_DEVICE=cuda (tests/tiny_weights.py).

hy3dgen imports torchvision, which runs here through tests/torchvision_cpu.py (PyPI's torchvision without its
C++ operators); where neither hy3dgen nor that torchvision is installed, the model tests skip and say why."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import trimesh

from conftest import TORCHVISION_MISSING
from pipeline.backends.gpu.hunyuan_mv import (
    MODEL_FILE,
    HunyuanMultiViewBuilder,
    check_request,
    current_dinov2_names,
    mv_images,
    shape_mesh,
)
from pipeline.backends.protocols import MESH_VIEW_TAGS, MeshBuilder, MeshRequest
from tiny_weights import adapter_device

DEVICE = adapter_device()

HY3DGEN_MISSING = None if importlib.util.find_spec("hy3dgen") else "hy3dgen is not installed: run `make setup`"
needs_hy3dgen = pytest.mark.skipif(bool(TORCHVISION_MISSING or HY3DGEN_MISSING),
                                   reason=str(TORCHVISION_MISSING or HY3DGEN_MISSING))


def figure_view(width: int = 48, height: int = 96, shift: int = 0) -> np.ndarray:
    view = np.zeros((height, width, 4), dtype=np.uint8)
    view[10:90, 14 + shift:34 + shift] = (200, 60, 60, 255)
    view[12:24, 20 + shift:28 + shift] = (230, 190, 160, 255)  # a head
    return view


def request(seed: int = 3) -> MeshRequest:
    return MeshRequest(views={tag: figure_view(shift=i) for i, tag in enumerate(MESH_VIEW_TAGS)}, seed=seed)


def test_mv_images_are_rgba_in_the_models_order() -> None:
    shuffled = MeshRequest(views=dict(reversed(list(request().views.items()))), seed=0)
    images = mv_images(shuffled)
    assert list(images) == list(MESH_VIEW_TAGS)
    assert all(image.mode == "RGBA" and image.size == (48, 96) for image in images.values())
    assert np.array_equal(np.asarray(images["back"]), request().views["back"])


def test_a_request_with_an_unknown_tag_a_wrong_shape_or_no_subject_is_refused() -> None:
    with pytest.raises(ValueError, match="tagged front, left, back, right"):
        check_request(MeshRequest(views={"top": figure_view()}, seed=0))
    with pytest.raises(ValueError, match="RGBA"):
        check_request(MeshRequest(views={"front": figure_view()[..., :3]}, seed=0))
    with pytest.raises(ValueError, match="no subject"):
        check_request(MeshRequest(views={"front": np.zeros((8, 8, 4), np.uint8)}, seed=0))


def test_no_surface_is_an_empty_mesh() -> None:
    assert shape_mesh(None).empty
    assert shape_mesh(trimesh.Trimesh()).empty


@needs_hy3dgen
def test_shape_mesh_drops_floaters_and_reduces_faces() -> None:
    body = trimesh.creation.icosphere(subdivisions=4)  # 5,120 faces
    speck = trimesh.creation.icosphere(subdivisions=0, radius=0.05)  # 20 faces: under 0.5 % of them all
    speck.apply_translation((3, 0, 0))
    cleaned = shape_mesh(trimesh.util.concatenate([body, speck]), max_faces=1000)
    assert 800 <= len(cleaned.faces) <= 1000
    assert cleaned.vertices[:, 0].max() < 1.5  # the speck is gone
    assert cleaned.faces.dtype == np.int32 and cleaned.faces.max() < len(cleaned.vertices)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:  # used by @needs_hy3dgen tests only
    from tiny_hunyuan import write_tiny_hunyuan_mv

    return write_tiny_hunyuan_mv(tmp_path_factory.mktemp("multiview") / "hunyuan3d-dit-v2-mv")


@needs_hy3dgen
def test_the_tiny_model_builds_a_mesh_in_its_unit_cube(tiny_model: Path) -> None:
    builder = HunyuanMultiViewBuilder(tiny_model, device=DEVICE, steps=2, octree_resolution=24)
    assert isinstance(builder, MeshBuilder)
    mesh = builder.build_mesh(request())
    assert not mesh.empty
    assert mesh.vertices.dtype == np.float32 and np.abs(mesh.vertices).max() <= 1.02
    assert mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.vertices)
    assert "hunyuan3d-dit-v2-mv" in builder.version and "hy3dgen 2.0.2" in builder.version


# ---- the real checkpoint's DINOv2 names (saved by transformers 4) -------------------------------------------


def tiny_dinov2(swiglu: bool) -> object:
    import torch
    from transformers import Dinov2Config, Dinov2Model

    with torch.random.fork_rng():
        torch.manual_seed(1)
        return Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=28,
                                        patch_size=14, mlp_ratio=2, use_swiglu_ffn=swiglu))


@pytest.mark.parametrize("swiglu", [False, True])
def test_the_old_dinov2_names_are_the_ones_transformers_itself_converts(swiglu: bool, tmp_path: Path) -> None:
    """The tiny checkpoint's names (legacy_dinov2_names) are transformers 4's: transformers 5's own
    from_pretrained reads them into the same model, and current_dinov2_names maps them as it does."""
    import torch
    from safetensors.torch import save_file
    from transformers import Dinov2Model

    from tiny_hunyuan import legacy_dinov2_names

    model = tiny_dinov2(swiglu)
    current = model.state_dict()  # type: ignore[attr-defined]
    legacy = legacy_dinov2_names(current)
    assert "encoder.layer.0.attention.attention.query.weight" in legacy and not any("q_proj" in k for k in legacy)
    assert any(".mlp.weights_in." in k for k in legacy) is swiglu
    save_file({k: v.contiguous() for k, v in legacy.items()}, str(tmp_path / "model.safetensors"))
    model.config.save_pretrained(tmp_path)  # type: ignore[attr-defined]
    theirs = Dinov2Model.from_pretrained(tmp_path).state_dict()
    ours = current_dinov2_names(legacy)
    assert set(theirs) == set(ours) == set(current)
    assert all(torch.equal(theirs[k], ours[k]) and torch.equal(current[k], ours[k]) for k in current)
    assert current_dinov2_names(current).keys() == current.keys()  # the new names pass unchanged


@needs_hy3dgen
def test_the_tiny_checkpoint_has_the_real_files_names_which_hy3dgen_alone_cannot_load(tiny_model: Path) -> None:
    """hy3dgen 2.0.2's from_single_file loads the image encoder with a strict load_state_dict and no renaming:
    under transformers 5 it refuses the real checkpoint (and so this tiny one); the adapter maps the names."""
    from hy3dgen.shapegen import Hunyuan3DDiTFlowMatchingPipeline
    from safetensors import safe_open

    with safe_open(str(tiny_model / MODEL_FILE), framework="pt") as weights:
        keys = list(weights.keys())
    encoder = "conditioner.main_image_encoder.model.encoder.layer.0."
    assert f"{encoder}attention.attention.query.weight" in keys and f"{encoder}attention.output.dense.bias" in keys
    assert not any(".q_proj." in k or ".o_proj." in k for k in keys)
    with pytest.raises(RuntimeError, match="attention.attention.query"):
        Hunyuan3DDiTFlowMatchingPipeline.from_single_file(str(tiny_model / MODEL_FILE), str(tiny_model / "config.yaml"),
                                                          device="cpu", dtype=torch_float32(), use_safetensors=True)
    pipe = HunyuanMultiViewBuilder(tiny_model, device=DEVICE).load()
    assert pipe.device.type == DEVICE and str(pipe.dtype) == ("torch.float16" if DEVICE == "cuda" else "torch.float32")


def torch_float32() -> object:
    import torch

    return torch.float32


@needs_hy3dgen
def test_a_checkpoint_that_does_not_fit_its_config_names_the_file(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    broken = tmp_path / "hunyuan3d-dit-v2-mv"
    shutil.copytree(tiny_model, broken)
    tensors = load_file(str(broken / MODEL_FILE))
    save_file({k: v for k, v in tensors.items() if not k.startswith("vae.")}, str(broken / MODEL_FILE))
    with pytest.raises(RuntimeError, match="has no weights for vae"):
        HunyuanMultiViewBuilder(broken, device="cpu").load()
    save_file({k.replace("layer.0.norm1", "layer.0.norm9"): v for k, v in tensors.items()}, str(broken / MODEL_FILE))
    with pytest.raises(RuntimeError, match=f"{MODEL_FILE}: its conditioner weights do not fit"):
        HunyuanMultiViewBuilder(broken, device="cpu").load()


@needs_hy3dgen
def test_the_seed_decides_the_mesh(tiny_model: Path) -> None:
    builder = HunyuanMultiViewBuilder(tiny_model, device=DEVICE, steps=2, octree_resolution=24)
    first, again, other = (builder.build_mesh(request(seed)) for seed in (3, 3, 4))
    assert np.array_equal(first.vertices, again.vertices) and np.array_equal(first.faces, again.faces)
    assert first.vertices.shape != other.vertices.shape or not np.array_equal(first.vertices, other.vertices)


@needs_hy3dgen
def test_a_missing_model_says_how_to_get_it(tmp_path: Path) -> None:
    builder = HunyuanMultiViewBuilder(tmp_path / "hunyuan3d-dit-v2-mv", device="cpu")
    with pytest.raises(FileNotFoundError, match="config.yaml, model.fp16.safetensors missing.*weights pull"):
        builder.load()


@needs_hy3dgen
def test_the_gpu_profile_builds_it_from_the_verified_weights(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    from pipeline.backends.config import ModelConfig
    from pipeline.backends.planned import PlannedBackends
    from pipeline.backends.weights import write_manifest

    weights = tmp_path / "weights"
    shutil.copytree(tiny_model, weights / "multiview" / "hunyuan3d-dit-v2-mv")
    write_manifest(weights, ["multiview"])
    backends = PlannedBackends(ModelConfig(profile="gpu", weights_dir=weights, mesh_steps=2, mesh_resolution=24))
    builder = backends.serving("MeshBuilder")
    assert isinstance(builder, HunyuanMultiViewBuilder)
    assert (builder.steps, builder.octree_resolution) == (2, 24)
    assert PlannedBackends(ModelConfig(profile="cpu")).serving("MeshBuilder") is None
    assert PlannedBackends(ModelConfig(profile="commercial-safe")).serving_plan()["MeshBuilder"] == "triposr"


EXIT_SCRIPT = """
import threading
from pipeline.backends.config import ModelConfig
from pipeline.backends.planned import PlannedBackends

PlannedBackends(ModelConfig(profile="gpu"))  # on the main thread, as a process builds its backends


def phase_thread():  # what a worker thread of the local runtime does first under the gpu profile
    import trimesh  # noqa: F401
    import pymeshlab  # noqa: F401


thread = threading.Thread(target=phase_thread)
thread.start()
thread.join()
"""


def test_a_gpu_process_exits_cleanly_after_its_threads_import_the_mesh_libraries() -> None:
    """pymeshlab aborts the process at exit when it and trimesh are first imported on one worker thread;
    PlannedBackends imports it on the main thread when it plans the multi-view model (hunyuan_mv docstring)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", EXIT_SCRIPT], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
