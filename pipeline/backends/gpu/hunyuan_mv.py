"""The multi-view shape model: Hunyuan3D-2mv (the `hy3dgen` package) rebuilds the dressed person's surface.

- preprocess (`mv_images`): each tagged view, RGBA with the subject's alpha, as a PIL image. hy3dgen's own
  `MVImageProcessorV2` then crops each to its alpha, recentres it with a border on white and resizes it, and
  sorts the views into its order (front, left, back, right).
- predict: one call of the flow-matching pipeline (the views are one sample), seeded; its VAE decodes an
  occupancy grid of `octree_resolution` cells a side and marching cubes extracts the surface.
- postprocess (`shape_mesh`): hy3dgen's own floater, degenerate-face and face-count reducers (pymeshlab) down to
  `max_faces`; no surface (a blank occupancy grid) gives an empty `ShapeMesh`, which the phase declines.

It loads from a local folder only: `config.yaml` and `model.fp16.safetensors` (the `hunyuan3d-dit-v2-mv`
subfolder of `tencent/Hunyuan3D-2mv`, `dropfit weights` key `multiview`) through hy3dgen's `from_single_file`;
hy3dgen's `from_pretrained` is not used, since it downloads when a folder is missing. fp16 on CUDA (the
checkpoint's own precision), fp32 on CPU. hy3dgen imports torchvision, so only an image with torchvision runs it.

`import_native_libraries()` must run on the main thread before any worker thread imports hy3dgen: pymeshlab
(which hy3dgen imports) aborts the process at exit ("malloc_consolidate(): unaligned fastbin chunk") when it and
trimesh are both first imported on the same non-main thread. `PlannedBackends` calls it when it plans this
model; with either library imported on the main thread first, the abort does not happen.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.backends.installed import installed_version
from pipeline.backends.protocols import MESH_VIEW_TAGS, MeshRequest, ShapeMesh
from pipeline.backends.table import BuildContext
from pipeline.errors import RetryableError

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.fp16.safetensors"
STEPS = 50  # hy3dgen's default and its multi-view example's
GUIDANCE = 5.0
OCTREE_RESOLUTION = 256  # marching-cubes grid: 256 keeps fingers; hy3dgen's 384 costs 3.4x the decoding
NUM_CHUNKS = 20000  # query points per decoder call
MAX_FACES = 60000  # after reduction: enough for a person, small enough to bake and ship
MIN_ALPHA = 8  # a view's alpha above this counts as the subject


def import_native_libraries() -> None:
    """Import pymeshlab now (call on the main thread; see the module docstring). Absent, the load reports it."""
    try:
        import pymeshlab  # noqa: F401
    except ImportError:
        pass


# ---- preprocess ----------------------------------------------------------------------------------------------


def check_request(request: MeshRequest) -> None:
    unknown = sorted(set(request.views) - set(MESH_VIEW_TAGS))
    if unknown or not request.views:
        raise ValueError(f"views must be tagged {', '.join(MESH_VIEW_TAGS)}; got {sorted(request.views)}")
    for tag, image in request.views.items():
        if image.ndim != 3 or image.shape[2] != 4 or image.dtype != np.uint8:
            raise ValueError(f"view {tag} must be (H, W, 4) uint8 RGBA, got {image.shape} {image.dtype}")
        if not (image[..., 3] > MIN_ALPHA).any():
            raise ValueError(f"view {tag} has no subject: its alpha is empty")


def mv_images(request: MeshRequest) -> dict[str, Image.Image]:
    """The pipeline's input: tag -> RGBA image, in MESH_VIEW_TAGS order."""
    check_request(request)
    return {tag: Image.fromarray(request.views[tag], mode="RGBA") for tag in MESH_VIEW_TAGS if tag in request.views}


# ---- postprocess ---------------------------------------------------------------------------------------------


def shape_mesh(mesh: Any, max_faces: int = MAX_FACES) -> ShapeMesh:
    """The pipeline's trimesh (or None when marching cubes found no surface), cleaned and reduced."""
    if mesh is None or len(getattr(mesh, "faces", ())) == 0:
        return ShapeMesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32))
    from hy3dgen.shapegen import DegenerateFaceRemover, FaceReducer, FloaterRemover

    mesh = FloaterRemover()(mesh)
    mesh = DegenerateFaceRemover()(mesh)
    if len(mesh.faces) > max_faces:
        mesh = FaceReducer()(mesh, max_facenum=max_faces)
    return ShapeMesh(np.asarray(mesh.vertices, dtype=np.float32), np.asarray(mesh.faces, dtype=np.int32))


# ---- the builder ---------------------------------------------------------------------------------------------


class HunyuanMultiViewBuilder:
    """`MeshBuilder` on a Hunyuan3D-2mv shape folder. Loads once, lazily; calls are serialized."""

    name = "hunyuan3d-2mv"

    def __init__(self, path: Path, device: str | None = None, steps: int = STEPS,
                 octree_resolution: int = OCTREE_RESOLUTION, guidance: float = GUIDANCE,
                 max_faces: int = MAX_FACES) -> None:
        self.path = Path(path)
        self.device = device
        self.steps = steps
        self.octree_resolution = octree_resolution
        self.guidance = guidance
        self.max_faces = max_faces
        self.version = f"{self.path.name} (hy3dgen {installed_version('hy3dgen')})"
        self._pipe: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        with self._lock:
            return self._pipeline()

    def warm_up(self) -> None:
        """Load the model now (a container's start-up), not on the first call."""
        self.load()

    def build_mesh(self, request: MeshRequest) -> ShapeMesh:
        images = mv_images(request)
        with self._lock:
            mesh = predict(self._pipeline(), images, request.seed, self.steps, self.octree_resolution,
                           self.guidance)
        return shape_mesh(mesh, self.max_faces)

    def _pipeline(self) -> Any:
        if self._pipe is None:
            self._pipe = load_hunyuan_mv(self.path, self.device)
        return self._pipe


def load_hunyuan_mv(path: Path, device: str | None) -> Any:
    """hy3dgen's flow-matching pipeline from `path` (config.yaml + model.fp16.safetensors), on `device`."""
    import hy3dgen.shapegen.models.conditioner  # noqa: F401 - imports torchvision: fails here, and every time
    import torch
    from hy3dgen.shapegen import Hunyuan3DDiTFlowMatchingPipeline

    missing = [name for name in (CONFIG_FILE, MODEL_FILE) if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(f"no Hunyuan3D-2mv shape model in {path} ({', '.join(missing)} missing): "
                                "pull the weights (dropfit weights pull --only multiview)")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    return Hunyuan3DDiTFlowMatchingPipeline.from_single_file(
        str(path / MODEL_FILE), str(path / CONFIG_FILE), device=device, dtype=dtype, use_safetensors=True)


def predict(pipe: Any, images: dict[str, Image.Image], seed: int, steps: int, octree_resolution: int,
            guidance: float) -> Any:
    """The pipeline's trimesh for one multi-view sample, or None when it found no surface."""
    import torch

    generator = torch.Generator("cpu").manual_seed(seed)
    try:
        meshes = pipe(image=images, num_inference_steps=steps, guidance_scale=guidance, generator=generator,
                      octree_resolution=octree_resolution, num_chunks=NUM_CHUNKS, output_type="trimesh",
                      enable_pbar=False)
    except torch.cuda.OutOfMemoryError as error:
        raise RetryableError("multi-view 3D: the GPU ran out of memory") from error
    return meshes[0] if meshes else None


def build(ctx: BuildContext) -> HunyuanMultiViewBuilder:
    return HunyuanMultiViewBuilder(ctx.weights() / "hunyuan3d-dit-v2-mv", steps=ctx.config.mesh_steps,
                                   octree_resolution=ctx.config.mesh_resolution)
