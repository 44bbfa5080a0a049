"""The multi-view shape model: Hunyuan3D-2mv (the `hy3dgen` package) rebuilds the dressed person's surface.

- preprocess (`mv_images`): each tagged view, RGBA with the subject's alpha, as a PIL image. hy3dgen's own
  `MVImageProcessorV2` then crops each to its alpha, recentres it with a border on white and resizes it, and
  sorts the views into its order (front, left, back, right).
- predict: one call of the flow-matching pipeline (the views are one sample), seeded; its VAE decodes an
  occupancy grid of `octree_resolution` cells a side and marching cubes extracts the surface.
- postprocess (`shape_mesh`): hy3dgen's own floater, degenerate-face and face-count reducers (pymeshlab) down to
  `max_faces`; no surface (a blank occupancy grid) gives an empty `ShapeMesh`, which the phase declines.

It loads from a local folder only: `config.yaml` and `model.fp16.safetensors` (the `hunyuan3d-dit-v2-mv`
subfolder of `tencent/Hunyuan3D-2mv`, `dropfit weights` key `multiview`), the way hy3dgen's `from_single_file`
does (the config's classes, then each module's part of the checkpoint with a strict `load_state_dict`), with one
step more: the checkpoint's image encoder is a DINOv2 saved by transformers 4, whose parameter names transformers
5 changed (`attention.attention.query` -> `attention.q_proj`, `mlp.weights_in` -> `mlp.gate_proj` + `up_proj`, ...)
and converts only inside its own `from_pretrained`, which hy3dgen does not use; `current_dinov2_names` maps them
as transformers' conversion table does. hy3dgen's `from_pretrained` is not used either: it downloads when a folder
is missing. fp16 on CUDA (the checkpoint's own precision), fp32 on CPU. hy3dgen imports torchvision, so only an
image with torchvision runs it.

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
MODULES = ("model", "vae", "conditioner")  # the checkpoint's key prefixes, each a module of config.yaml
# transformers 4's DINOv2 names -> transformers 5's (transformers' conversion_mapping.py, "Dinov2Model"); the
# SwiGLU variant's fused `weights_in` splits in two along its rows (gate first, as transformers' Chunk(dim=0))
DINOV2_RENAMES = ((".attention.attention.query.", ".attention.q_proj."),
                  (".attention.attention.key.", ".attention.k_proj."),
                  (".attention.attention.value.", ".attention.v_proj."),
                  (".attention.output.dense.", ".attention.o_proj."),
                  (".mlp.weights_out.", ".mlp.down_proj."))
DINOV2_SPLIT = (".mlp.weights_in.", (".mlp.gate_proj.", ".mlp.up_proj."))


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
    import safetensors.torch
    import torch
    import yaml
    from hy3dgen.shapegen import Hunyuan3DDiTFlowMatchingPipeline
    from hy3dgen.shapegen.pipelines import instantiate_from_config

    missing = [name for name in (CONFIG_FILE, MODEL_FILE) if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(f"no Hunyuan3D-2mv shape model in {path} ({', '.join(missing)} missing): "
                                "pull the weights (dropfit weights pull --only multiview)")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    config = yaml.safe_load((path / CONFIG_FILE).read_text())
    parts = checkpoint_parts(safetensors.torch.load_file(str(path / MODEL_FILE), device="cpu"), path / MODEL_FILE)
    parts["conditioner"] = current_dinov2_names(parts["conditioner"])
    modules = {name: instantiate_from_config(config[name]) for name in MODULES}
    for name, module in modules.items():
        try:
            module.load_state_dict(parts[name])  # strict: a name that does not fit is an error, never random weights
        except RuntimeError as error:
            cause = " ".join(str(error).splitlines()[:2])[:300]
            raise RuntimeError(f"{path / MODEL_FILE}: its {name} weights do not fit {config[name]['target']}: "
                               f"{cause}") from error
    return Hunyuan3DDiTFlowMatchingPipeline(
        vae=modules["vae"], model=modules["model"], conditioner=modules["conditioner"],
        scheduler=instantiate_from_config(config["scheduler"]),
        image_processor=instantiate_from_config(config["image_processor"]), device=device, dtype=dtype)


def checkpoint_parts(tensors: dict[str, Any], file: Path) -> dict[str, dict[str, Any]]:
    """The checkpoint's tensors by module (`model.`, `vae.`, `conditioner.` prefixes), as hy3dgen splits them;
    every module must have weights (a missing image encoder would run on random weights)."""
    parts: dict[str, dict[str, Any]] = {name: {} for name in MODULES}
    for key, value in tensors.items():
        module, _, rest = key.partition(".")
        parts.setdefault(module, {})[rest] = value
    empty = [name for name in MODULES if not parts[name]]
    if empty:
        raise RuntimeError(f"{file} has no weights for {', '.join(empty)}: it is not a Hunyuan3D-2mv shape model")
    return parts


def current_dinov2_names(state: dict[str, Any]) -> dict[str, Any]:
    """A state dict whose DINOv2 keys use transformers 4's names, with transformers 5's names instead (keys
    already in the new names, and every other key, unchanged)."""
    out: dict[str, Any] = {}
    old, (gate, up) = DINOV2_SPLIT
    for key, value in state.items():
        if old in key:
            first, second = value.chunk(2, dim=0)
            out[key.replace(old, gate)], out[key.replace(old, up)] = first.contiguous(), second.contiguous()
            continue
        for legacy, current in DINOV2_RENAMES:
            key = key.replace(legacy, current)
        out[key] = value
    return out


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
