"""The commercial-safe mesh builder: TripoSR (MIT) rebuilds the dressed person's surface from its front view.

TripoSR (github.com/VAST-AI-Research/TripoSR, weights `stabilityai/TripoSR`, both MIT; its image encoder
`facebook/dino-vitb16`, Apache-2.0) is a feed-forward image-to-3D model: one image in, so of the four tagged
views only `front` is used, and the back is the model's own guess (phase 4 scores the placed mesh against all 8
views and declines one that does not match them). Only its shape is kept; the texture is phase 4's bake.
- preprocess (`conditioning_image`, plain numpy): TripoSR's `run.py` for an image that already has its alpha
  (`remove_background` keeps such an image as it is): `resize_foreground` at ratio 0.85 (the crop to the
  subject's alpha > 0 box, padded to a square, padded again so the subject spans 85 % of the side), then the
  colours composited onto grey 0.5. The network resizes it to config.yaml's `cond_image_size` (512).
- predict (`predict`): the network (`triposr_net.TripoSRNet`, a port that loads `model.ckpt` strictly) makes the
  triplanes, and the density is queried on a `resolution`^3 grid spanning the renderer's (-radius, radius) cube,
  in chunks. TripoSR is deterministic: the request's seed changes nothing.
- postprocess (`isosurface`, `shape_mesh`): marching cubes (`skimage.measure.marching_cubes`, where TripoSR uses
  torchmcubes) at density 25 (TripoSR's `extract_mesh` threshold), vertices scaled back to the cube, degenerate
  faces and unused vertices dropped, then reduced to `max_faces` (pymeshlab's quadric edge collapse). No surface
  gives an empty `ShapeMesh`, which phase 4 declines.
The mesh stays in TripoSR's frame (z up, the input camera on +x); phase 4 finds up and front by silhouettes. The
reference's camera distance (1.9) and field of view (40 degrees) are its NeRF renderer's defaults, used only to
render views, so they play no part here.

It loads from the weights folder only: `config.yaml` and `model.ckpt` of `stabilityai/TripoSR`, and the DINO
encoder's `config.json` in `dino-vitb16/` (TripoSR builds the encoder from it; its trained weights are in
model.ckpt); a missing file is an error before torch is imported, never a download. float32, on CUDA when
there is one. `import_native_libraries()` runs on the main thread when the profile plans it (pymeshlab: see
hunyuan_mv's docstring).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.backends.protocols import MeshRequest, ShapeMesh
from pipeline.backends.table import BuildContext
from pipeline.errors import RetryableError

TRIPOSR_COMMIT = "d26e33181947bbbc4c6fc0f5734e1ec6c080956e"  # github.com/VAST-AI-Research/TripoSR, as ported
CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.ckpt"
DINO_CONFIG = "dino-vitb16/config.json"  # facebook/dino-vitb16's config: the encoder's shape
FOREGROUND_RATIO = 0.85  # run.py's --foreground-ratio default
GREY = 0.5  # the background the subject is composited onto (run.py, gradio_app.py)
THRESHOLD = 25.0  # the density of the surface (TSR.extract_mesh's default)
RESOLUTION = 256  # marching-cubes grid, cells a side (run.py's --mc-resolution default)
CHUNK = 2**18  # grid points per density query
MAX_FACES = 60000  # as the other mesh builders: enough for a person, small enough to bake and ship


def import_native_libraries() -> None:
    """Import pymeshlab now (call on the main thread; see hunyuan_mv's docstring). Absent, the reduction says so."""
    try:
        import pymeshlab  # noqa: F401
    except ImportError:
        pass


# ---- preprocess ------------------------------------------------------------------------------------------------


def front_view(request: MeshRequest) -> np.ndarray:
    """The request's `front` view, checked: (H, W, 4) uint8 RGBA with some subject in its alpha."""
    view = request.front("TripoSR")
    ys, xs = np.nonzero(view[..., 3])
    if len(ys) == 0 or ys.max() == ys.min() or xs.max() == xs.min():
        raise ValueError("the front view has no subject: its alpha is empty (or one pixel wide)")
    return view


def foreground_square(rgba: np.ndarray, ratio: float = FOREGROUND_RATIO) -> np.ndarray:
    """TripoSR's `resize_foreground`: the alpha > 0 box (its last row and column excluded, as the reference
    slices it), padded with transparent pixels to a centred square, then to side / ratio."""
    ys, xs = np.nonzero(rgba[..., 3])
    subject = rgba[ys.min():ys.max(), xs.min():xs.max()]
    size = max(subject.shape[:2])
    square = centred(subject, size)
    return centred(square, int(size / ratio))


def centred(image: np.ndarray, side: int) -> np.ndarray:
    """`image` padded with zeros to side x side, the extra split as TripoSR does (the odd pixel after)."""
    top, left = (side - image.shape[0]) // 2, (side - image.shape[1]) // 2
    return np.pad(image, ((top, side - image.shape[0] - top), (left, side - image.shape[1] - left), (0, 0)))


def on_grey(rgba: np.ndarray) -> np.ndarray:
    """RGB uint8: the colours over grey 0.5 by their alpha, truncated to uint8 as the reference does."""
    pixels = rgba.astype(np.float32) / 255
    alpha = pixels[..., 3:4]
    return ((pixels[..., :3] * alpha + (1 - alpha) * GREY) * 255).astype(np.uint8)


def conditioning_image(rgba: np.ndarray) -> np.ndarray:
    """The network's input for a front view: (S, S, 3) uint8, the subject at 85 % of the side on grey."""
    return on_grey(foreground_square(rgba))


# ---- postprocess ---------------------------------------------------------------------------------------------


def isosurface(density: np.ndarray, radius: float, threshold: float = THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """(vertices, faces) where the (R, R, R) density grid (axes x, y, z over (-radius, radius)) crosses
    `threshold`, faces counter-clockwise seen from outside (the low-density side); empty when it never does."""
    from skimage.measure import marching_cubes

    level = np.asarray(density, dtype=np.float32) - threshold
    if not (level.min() < 0 < level.max()):
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64)
    vertices, faces, _, _ = marching_cubes(level, 0.0)  # type: ignore[no-untyped-call]
    vertices = vertices / (level.shape[0] - 1) * (2 * radius) - radius
    return vertices.astype(np.float32), faces[:, ::-1].astype(np.int64)  # skimage's winding faces inward here


def shape_mesh(vertices: np.ndarray, faces: np.ndarray, max_faces: int = MAX_FACES) -> ShapeMesh:
    """A ShapeMesh: faces that repeat a vertex dropped, then the vertices no face uses; reduced to `max_faces`."""
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    if len(faces) == 0:
        return ShapeMesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32))
    used, inverse = np.unique(faces, return_inverse=True)
    vertices, faces = np.asarray(vertices, dtype=np.float64)[used], inverse.reshape(-1, 3)
    if len(faces) > max_faces:
        vertices, faces = reduced(vertices, faces, max_faces)
    return ShapeMesh(np.asarray(vertices, dtype=np.float32), np.asarray(faces, dtype=np.int32))


def reduced(vertices: np.ndarray, faces: np.ndarray, max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """The mesh reduced to at most `max_faces` faces by quadric edge collapse (pymeshlab)."""
    import pymeshlab

    meshes = pymeshlab.MeshSet()
    meshes.add_mesh(pymeshlab.Mesh(vertex_matrix=vertices, face_matrix=faces.astype(np.int32)))
    meshes.meshing_decimation_quadric_edge_collapse(targetfacenum=max_faces, preservenormal=True,
                                                    preservetopology=True)
    mesh = meshes.current_mesh()
    return mesh.vertex_matrix(), mesh.face_matrix()


# ---- the weights folder ----------------------------------------------------------------------------------------


def model_files(folder: Path) -> dict[str, Path]:
    """The folder's config.yaml, model.ckpt and the encoder's config.json; FileNotFoundError naming the ones
    missing (never a download)."""
    files = {name: folder / name for name in (CONFIG_FILE, MODEL_FILE, DINO_CONFIG)}
    missing = [name for name, path in files.items() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"no TripoSR model in {folder} ({', '.join(missing)} missing): pull the weights "
                                "(dropfit weights pull --only triposr)")
    return files


def read_configs(files: dict[str, Path]) -> tuple[dict[str, Any], dict[str, Any]]:
    import yaml

    config = yaml.safe_load(files[CONFIG_FILE].read_text())
    vit = json.loads(files[DINO_CONFIG].read_text())
    if not isinstance(config, dict) or not isinstance(vit, dict):
        raise ValueError(f"{files[CONFIG_FILE]} and {files[DINO_CONFIG]} must each hold a mapping")
    return config, vit


# ---- the builder -----------------------------------------------------------------------------------------------


class TripoSRMeshBuilder:
    """`MeshBuilder` on a TripoSR weights folder. Loads once, lazily; calls are serialized."""

    name = "triposr"

    def __init__(self, folder: Path, device: str | None = None, resolution: int = RESOLUTION,
                 max_faces: int = MAX_FACES) -> None:
        self.folder = Path(folder)
        self.device = device
        self.resolution = resolution
        self.max_faces = max_faces
        self.version = f"TripoSR (port of VAST-AI-Research/TripoSR@{TRIPOSR_COMMIT[:12]}), grid {resolution}"
        self._net: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        with self._lock:
            return self._network()

    def warm_up(self) -> None:
        """Load the model now (a container's start-up), not on the first call."""
        self.load()

    def build_mesh(self, request: MeshRequest) -> ShapeMesh:
        image = conditioning_image(front_view(request))
        with self._lock:
            net = self._network()
            density = predict(net, image, self.resolution)
        vertices, faces = isosurface(density, net.shape.radius)
        return shape_mesh(vertices, faces, self.max_faces)

    def _network(self) -> Any:
        if self._net is None:
            self._net = load_network(self.folder, self.device)
        return self._net


def load_network(folder: Path, device: str | None) -> Any:
    """The TripoSR network of `folder` on `device` (None: CUDA when there is one)."""
    files = model_files(folder)
    config, vit = read_configs(files)
    import torch

    from pipeline.backends.gpu.triposr_net import load_triposr, shape_of

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return load_triposr(files[MODEL_FILE], shape_of(config, vit), device)


def predict(net: Any, image: np.ndarray, resolution: int) -> np.ndarray:
    """The density on a resolution^3 grid over the model's (-radius, radius) cube (axes x, y, z), for `image`
    ((S, S, 3) uint8)."""
    import torch

    device = next(net.parameters()).device
    try:
        with torch.inference_mode():
            pixels = torch.from_numpy(image).to(device=device, dtype=torch.float32).unsqueeze(0) / 255
            triplane = net.triplanes(pixels)[0]
            axis = torch.linspace(-net.shape.radius, net.shape.radius, resolution, device=device)
            points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
            density = torch.cat([net.density(triplane, chunk) for chunk in torch.split(points, CHUNK)])
    except torch.cuda.OutOfMemoryError as error:
        raise RetryableError("TripoSR: the GPU ran out of memory") from error
    return density.reshape(resolution, resolution, resolution).float().cpu().numpy()


def build(ctx: BuildContext) -> TripoSRMeshBuilder:
    return TripoSRMeshBuilder(ctx.weights(), resolution=ctx.config.mesh_resolution)
