"""The commercial-safe mesh builder: TRELLIS.2-4B (MIT) rebuilds the dressed person's surface from its front view.

TRELLIS.2 (github.com/microsoft/TRELLIS.2) is an image-to-3D model: one image in, so of the four tagged views only
`front` is used (the other sides are the model's own; phase 4 scores the result against all 8 views and declines
a mesh that does not match them). Only its shape is kept; the texture is phase 4's bake of the views.
- preprocess (`conditioning_image`): TRELLIS.2's own `preprocess_image` for an image with alpha, in plain
  numpy/PIL: scaled to at most 1024 a side, cropped to the square around its opaque pixels (alpha > 0.8),
  premultiplied onto black. The pipeline's background remover is therefore never needed and never loaded.
- predict (`predict`): the shape half of `Trellis2ImageTo3DPipeline.run`, through the pipeline's own methods:
  DINOv3 features at 512 (and 1024), the sparse structure flow and decoder, the shape latent flow (512, then 1024
  for the default `1024_cascade`), the shape decoder, hole filling and CuMesh's simplification to `max_faces`.
  The texture flows and decoder are not loaded.
- postprocess (`shape_mesh`): the mesh as numpy, degenerate faces and unused vertices dropped.

It loads from the weights folder only: `pipeline.json` and the shape checkpoints of `microsoft/TRELLIS.2-4B`, the
sparse-structure decoder of `microsoft/TRELLIS-image-large` under `microsoft/TRELLIS-image-large/` (the relative
path pipeline.json names it by), and DINOv3 ViT-L/16 in `dinov3/`; a missing file is an error before trellis2
is imported (its `from_pretrained` downloads from the hub when a file is missing). The trellis2 code is not on
PyPI and needs CUDA (o_voxel, CuMesh, FlexGEMM, flash-attn): an image without it makes viewer3d unavailable with
the import error (docs/gpu.md, "Commercial-safe photoreal stack"); this module imports it only where it loads.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.backends.protocols import MeshRequest, ShapeMesh
from pipeline.backends.table import BuildContext
from pipeline.errors import RetryableError

TRELLIS2_COMMIT = "5565d240c4a494caaf9ece7a554542b76ffa36d3"  # github.com/microsoft/TRELLIS.2, as read for this
PIPELINE_FILE = "pipeline.json"
PIPELINE_CLASS = "Trellis2ImageTo3DPipeline"
DINO_DIR = "dinov3"  # facebook/dinov3-vitl16-pretrain-lvd1689m
SHAPE_MODELS = ("sparse_structure_flow_model", "sparse_structure_decoder", "shape_slat_flow_model_512",
                "shape_slat_flow_model_1024", "shape_slat_decoder")
PIPELINE_TYPES = {"512": 32, "1024": 64, "1024_cascade": 32, "1536_cascade": 32}  # -> sparse structure resolution
PIPELINE_TYPE = "1024_cascade"  # TRELLIS.2's default
MAX_TOKENS = 49152  # the cascade lowers its resolution to stay under this many voxels (TRELLIS.2's default)
MAX_FACES = 60000  # as the Hunyuan3D builder: enough for a person, small enough to bake and ship
MAX_SIDE = 1024
OPAQUE = 0.8 * 255  # the crop's alpha threshold (TRELLIS.2's)


# ---- preprocess ------------------------------------------------------------------------------------------------


def front_view(request: MeshRequest) -> np.ndarray:
    """The request's `front` view, checked: (H, W, 4) uint8 RGBA with some subject in its alpha."""
    view = request.front("TRELLIS.2")
    if not (view[..., 3] > OPAQUE).any():
        raise ValueError("the front view has no subject: no pixel of its alpha is over 80 %")
    return view


def conditioning_image(rgba: np.ndarray, max_side: int = MAX_SIDE) -> Image.Image:
    """RGB: the view at most `max_side` a side (Lanczos), the square around its opaque pixels (alpha > 0.8, out of
    the image: transparent), colours multiplied by alpha; TRELLIS.2's `preprocess_image` for an RGBA input."""
    image = Image.fromarray(rgba, mode="RGBA")
    scale = min(1.0, max_side / max(image.size))
    if scale < 1:
        image = image.resize((int(image.width * scale), int(image.height * scale)), Image.Resampling.LANCZOS)
    ys, xs = np.nonzero(np.asarray(image)[:, :, 3] > OPAQUE)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max(), ys.max()
    centre, side = ((x0 + x1) / 2, (y0 + y1) / 2), int(max(x1 - x0, y1 - y0))
    crop = image.crop((centre[0] - side // 2, centre[1] - side // 2, centre[0] + side // 2, centre[1] + side // 2))
    pixels = np.asarray(crop).astype(np.float32) / 255
    return Image.fromarray((pixels[:, :, :3] * pixels[:, :, 3:4] * 255).astype(np.uint8))


# ---- postprocess ---------------------------------------------------------------------------------------------


def shape_mesh(vertices: np.ndarray, faces: np.ndarray) -> ShapeMesh:
    """The decoded mesh as a ShapeMesh: faces that repeat a vertex dropped, then the vertices no face uses."""
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    if len(faces) == 0:
        return ShapeMesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32))
    used, inverse = np.unique(faces, return_inverse=True)
    return ShapeMesh(np.asarray(vertices, dtype=np.float32)[used], inverse.reshape(-1, 3).astype(np.int32))


# ---- the weights folder ----------------------------------------------------------------------------------------


def pipeline_args(folder: Path) -> dict[str, Any]:
    """pipeline.json's `args`, checked to be the image-to-3D pipeline conditioned on DINOv3."""
    path = folder / PIPELINE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no TRELLIS.2 pipeline at {path}: pull the weights (dropfit weights pull --only "
                                "trellis2)")
    config = json.loads(path.read_text())
    args: dict[str, Any] = config.get("args", {})
    cond = args.get("image_cond_model", {}).get("name")
    if config.get("name") != PIPELINE_CLASS or cond != "DinoV3FeatureExtractor":
        raise ValueError(f"{path} is {config.get('name')!r} conditioned on {cond!r}; this adapter runs "
                         f"{PIPELINE_CLASS} on DinoV3FeatureExtractor")
    return args


def shape_model_paths(folder: Path, args: dict[str, Any]) -> dict[str, Path]:
    """Each shape model's checkpoint prefix (`<prefix>.json` + `<prefix>.safetensors`), as pipeline.json names it
    relative to the folder; FileNotFoundError naming the first file missing (never a download)."""
    paths = {}
    for name in SHAPE_MODELS:
        prefix = folder / args["models"][name]
        for suffix in (".json", ".safetensors"):
            if not prefix.with_name(prefix.name + suffix).is_file():
                raise FileNotFoundError(f"TRELLIS.2's {name} is missing: no {prefix}{suffix} (pull the weights)")
        paths[name] = prefix
    dino = folder / DINO_DIR
    for name in ("config.json", "model.safetensors"):
        if not (dino / name).is_file():
            raise FileNotFoundError(f"TRELLIS.2's image encoder (DINOv3) is missing: no {dino / name}")
    return paths


# ---- the builder -----------------------------------------------------------------------------------------------


class TrellisMeshBuilder:
    """`MeshBuilder` on a TRELLIS.2 weights folder. Loads once, lazily; calls are serialized."""

    name = "trellis2-4b"

    def __init__(self, folder: Path, device: str | None = None, pipeline_type: str = PIPELINE_TYPE,
                 steps: int | None = None, max_faces: int = MAX_FACES) -> None:
        """`steps` None: each stage's steps as pipeline.json sets them."""
        if pipeline_type not in PIPELINE_TYPES:
            raise ValueError(f"pipeline_type must be one of {', '.join(PIPELINE_TYPES)}, got {pipeline_type!r}")
        self.folder = Path(folder)
        self.device = device
        self.pipeline_type = pipeline_type
        self.steps = steps
        self.max_faces = max_faces
        self.version = f"TRELLIS.2-4B shape, {pipeline_type} (code microsoft/TRELLIS.2@{TRELLIS2_COMMIT[:12]})"
        self._pipe: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        with self._lock:
            return self._pipeline()

    def warm_up(self) -> None:
        """Load the model now (a container's start-up), not on the first call."""
        self.load()

    def build_mesh(self, request: MeshRequest) -> ShapeMesh:
        image = conditioning_image(front_view(request))
        with self._lock:
            vertices, faces = predict(self._pipeline(), image, request.seed, self.pipeline_type, self.steps,
                                      self.max_faces)
        return shape_mesh(vertices, faces)

    def _pipeline(self) -> Any:
        if self._pipe is None:
            self._pipe = load_trellis2(self.folder, self.device)
        return self._pipe


def load_trellis2(folder: Path, device: str | None) -> Any:
    """A `Trellis2ImageTo3DPipeline` holding the shape models only, from `folder` only, on `device`."""
    args = pipeline_args(folder)
    paths = shape_model_paths(folder, args)
    import torch
    from trellis2 import models  # type: ignore[import-not-found]  # not on PyPI: see the module docstring
    from trellis2.modules.image_feature_extractor import DinoV3FeatureExtractor  # type: ignore[import-not-found]
    from trellis2.pipelines import Trellis2ImageTo3DPipeline, samplers  # type: ignore[import-not-found]

    def sampler(key: str) -> tuple[Any, dict[str, Any]]:
        spec = args[key]
        return getattr(samplers, spec["name"])(**spec["args"]), dict(spec["params"])

    (ss_sampler, ss_params), (shape_sampler, shape_params) = sampler("sparse_structure_sampler"), \
        sampler("shape_slat_sampler")
    pipe = Trellis2ImageTo3DPipeline(
        models={name: models.from_pretrained(str(prefix)) for name, prefix in paths.items()},
        sparse_structure_sampler=ss_sampler, shape_slat_sampler=shape_sampler,
        sparse_structure_sampler_params=ss_params, shape_slat_sampler_params=shape_params,
        shape_slat_normalization=args["shape_slat_normalization"],
        image_cond_model=DinoV3FeatureExtractor(model_name=str(folder / DINO_DIR)), rembg_model=None,
        low_vram=False, default_pipeline_type=args.get("default_pipeline_type", PIPELINE_TYPE))
    pipe.to(torch.device(device or "cuda"))
    return pipe


def predict(pipe: Any, image: Image.Image, seed: int, pipeline_type: str, steps: int | None,
            max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """(vertices, faces) of the shape TRELLIS.2 makes of `image`, holes filled, at most `max_faces` faces."""
    import torch

    params = {} if steps is None else {"steps": steps}
    try:
        torch.manual_seed(seed)
        cond_512 = pipe.get_cond([image], 512)
        cond_1024 = pipe.get_cond([image], 1024) if pipeline_type != "512" else None
        coords = pipe.sample_sparse_structure(cond_512, PIPELINE_TYPES[pipeline_type], 1, params)
        if coords.shape[0] == 0:
            return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64)
        if pipeline_type in ("512", "1024"):
            cond = cond_512 if pipeline_type == "512" else cond_1024
            flow = pipe.models[f"shape_slat_flow_model_{pipeline_type}"]
            slat, resolution = pipe.sample_shape_slat(cond, flow, coords, params), int(pipeline_type)
        else:
            slat, resolution = pipe.sample_shape_slat_cascade(
                cond_512, cond_1024, pipe.models["shape_slat_flow_model_512"],
                pipe.models["shape_slat_flow_model_1024"], 512, int(pipeline_type.split("_")[0]), coords, params,
                MAX_TOKENS)
        meshes, _ = pipe.decode_shape_slat(slat, resolution)
        mesh = meshes[0]
        mesh.fill_holes()
        if mesh.faces.shape[0] > max_faces:
            mesh.simplify(max_faces)
    except torch.cuda.OutOfMemoryError as error:
        raise RetryableError("TRELLIS.2: the GPU ran out of memory") from error
    return mesh.vertices.float().cpu().numpy(), mesh.faces.long().cpu().numpy()


def build(ctx: BuildContext) -> TrellisMeshBuilder:
    return TrellisMeshBuilder(ctx.weights())
