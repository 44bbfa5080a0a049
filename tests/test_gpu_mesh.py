"""The multi-view 3D adapter (pipeline/backends/gpu/hunyuan_mv.py): its plain pre- and post-processing, and the
real hy3dgen pipeline on a tiny random-weight Hunyuan3D-2mv built from a config (tests/tiny_hunyuan.py).

hy3dgen imports torchvision, which runs here through tests/torchvision_cpu.py (PyPI's torchvision without its
C++ operators); where neither hy3dgen nor that torchvision is installed, the model tests skip and say why."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import trimesh

from conftest import TORCHVISION_MISSING
from pipeline.backends.gpu.hunyuan_mv import HunyuanMultiViewBuilder, check_request, mv_images, shape_mesh
from pipeline.backends.protocols import MESH_VIEW_TAGS, MeshBuilder, MeshRequest

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
    builder = HunyuanMultiViewBuilder(tiny_model, device="cpu", steps=2, octree_resolution=24)
    assert isinstance(builder, MeshBuilder)
    mesh = builder.build_mesh(request())
    assert not mesh.empty
    assert mesh.vertices.dtype == np.float32 and np.abs(mesh.vertices).max() <= 1.02
    assert mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.vertices)
    assert "hunyuan3d-dit-v2-mv" in builder.version and "hy3dgen 2.0.2" in builder.version


@needs_hy3dgen
def test_the_seed_decides_the_mesh(tiny_model: Path) -> None:
    builder = HunyuanMultiViewBuilder(tiny_model, device="cpu", steps=2, octree_resolution=24)
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
    assert PlannedBackends(ModelConfig(profile="commercial-safe")).serving("MeshBuilder") is None


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
