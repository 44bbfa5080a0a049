"""Benchmark of the GPU adapters on whatever weights folder you give: time to load, time per call, peak memory.

    .venv/bin/python tests/tiny_weights.py /tmp/tiny-weights          # tiny random-weight models (any machine)
    .venv/bin/python -m bench.gpu_adapters --weights /tmp/tiny-weights [--repeat 3] [--json out.json]
    .venv/bin/python -m bench.gpu_adapters --weights /models/weights  # the real ones, on a GPU machine

Each adapter is built through `PlannedBackends` (profile gpu, the folder verified against its manifest) and run
on the built-in sample person, the way the phases call it: the face embedder on the photo, SAM on one box, the
try-on painter and the view refiner on a batch of 8 requests each (one per angle), the multi-view model on 4 views
and TripoSR on the front view. Models not in the folder are skipped. Prints, per adapter: load seconds, median and
worst seconds per call over `--repeat` calls (after one warm-up), and the peak CUDA memory torch allocated during
its calls (the ONNX face models allocate outside torch, so theirs reads 0), and the process's peak RSS at the end.
The adapters run on CUDA where torch sees a GPU, else on the CPU. `--json` also writes the rows, the device and the
peak RSS to a file (tools/gpu-check reads it).

`--steps` and `--side` set the painter's and the refiner's steps and image side and the multi-view model's steps
and grid (the production defaults are slow on a CPU).
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.backends.config import ModelConfig
from pipeline.backends.planned import PlannedBackends
from pipeline.backends.protocols import MeshRequest, RefineRequest, TryOnRequest
from pipeline.backends.weights import read_manifest
from pipeline.sample import sample_garment, sample_person


def rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def subject_rgba(photo: np.ndarray) -> np.ndarray:
    """The sample person on transparent: everything not near-white is the subject."""
    alpha = np.where((photo < 235).any(axis=2), 255, 0).astype(np.uint8)
    return np.dstack([photo, alpha])


def tryon_requests(photo: np.ndarray, garment: np.ndarray, count: int = 8) -> list[TryOnRequest]:
    height, width = photo.shape[:2]
    paint = np.zeros((height, width), np.float32)
    paint[height // 4: height // 2, width // 4: 3 * width // 4] = 1.0
    keep = np.zeros_like(paint)
    keep[height // 16: height // 6, 3 * width // 8: 5 * width // 8] = 1.0
    return [TryOnRequest(render=photo, paint_mask=paint, keep_mask=keep, garment=garment,
                         prompt="snug across the chest", seed=i) for i in range(count)]


def refine_requests(photo: np.ndarray, count: int = 8) -> list[RefineRequest]:
    """The photo as 8 views to refine: a depth ramp on the subject (near at the centre), the face kept."""
    height, width = photo.shape[:2]
    subject = (photo < 235).any(axis=2)
    columns = 2.5 + 0.3 * np.abs(np.linspace(-1.0, 1.0, width, dtype=np.float32))
    depth = np.where(subject, columns[None, :], np.inf).astype(np.float32)
    keep = (~subject).astype(np.float32)
    keep[height // 16: height // 6, 3 * width // 8: 5 * width // 8] = 1.0
    return [RefineRequest(render=photo, depth=depth, person=photo, keep_mask=keep, prompt="seen from the front",
                          seed=i) for i in range(count)]


def cuda_peak_reset() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def cuda_peak_mb() -> float:
    import torch

    if not torch.cuda.is_available():
        return 0.0
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def measure(name: str, load: Callable[[], Any], call: Callable[[], Any], repeat: int) -> dict[str, float | str]:
    start = time.perf_counter()
    load()
    load_s = time.perf_counter() - start
    call()  # warm-up: kernels, caches, allocator
    cuda_peak_reset()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return {"adapter": name, "load_s": round(load_s, 2), "median_s": round(statistics.median(seconds), 3),
            "worst_s": round(max(seconds), 3), "cuda_peak_mb": round(cuda_peak_mb(), 1)}


def torchvision_imports() -> bool:
    try:
        import torchvision.transforms  # noqa: F401
    except Exception:  # noqa: BLE001 - PyPI's CUDA build next to CPU torch raises RuntimeError at import
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="painter and multi-view steps (production: 28, 50)")
    parser.add_argument("--side", type=int, default=64, help="painter side, px; the multi-view grid is side / 2")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    pulled = set(read_manifest(args.weights).models)
    config = ModelConfig(profile="gpu", weights_dir=args.weights, tryon_steps=args.steps, tryon_max_side=args.side,
                         refine_steps=args.steps, refine_max_side=args.side, mesh_steps=args.steps,
                         mesh_resolution=max(16, args.side // 2))
    backends = PlannedBackends(config)
    photo, garment = rgb(sample_person()), rgb(sample_garment())
    rows = []
    if "insightface" in pulled:
        faces = backends.serving("FaceEmbedder")
        assert faces is not None
        rows.append(measure("insightface (1 photo)", getattr(faces, "load", lambda: None),
                            lambda: faces.faces(photo), args.repeat))
    if "sam" in pulled:
        sam = backends.backend("sam")
        assert sam is not None
        box = (photo.shape[1] // 8, photo.shape[0] // 16, 7 * photo.shape[1] // 8, 15 * photo.shape[0] // 16)
        rows.append(measure("sam (1 box)", sam.load, lambda: sam.segment_boxes(photo, [box]), args.repeat))
    if "tryon" in pulled:
        painter = backends.serving("TryOnPainter")
        assert painter is not None
        requests = tryon_requests(photo, garment)
        rows.append(measure(f"flux-fill try-on (8 views, {args.steps} steps, {args.side} px)",
                            painter.load, lambda: painter.repaint(requests), args.repeat))
    if "refiner" in pulled:
        refiner = backends.serving("ViewRefiner")
        assert refiner is not None
        views = refine_requests(photo)
        rows.append(measure(f"sdxl depth refiner (8 views, {args.steps} steps, {args.side} px)",
                            refiner.load, lambda: refiner.refine(views), args.repeat))
    if "multiview" in pulled and not torchvision_imports():
        print("hunyuan3d-2mv skipped: hy3dgen needs torchvision, which does not import here (docs/gpu.md)")
    elif "multiview" in pulled:
        builder = backends.serving("MeshBuilder")
        assert builder is not None
        view = subject_rgba(photo)
        request = MeshRequest(views={tag: view for tag in ("front", "left", "back", "right")}, seed=0)
        rows.append(measure(f"hunyuan3d-2mv (4 views, {args.steps} steps, grid {config.mesh_resolution})",
                            builder.load, lambda: builder.build_mesh(request), args.repeat))
    if "triposr" in pulled:
        single = backends.backend("triposr")
        front = MeshRequest(views={"front": subject_rgba(photo)}, seed=0)
        rows.append(measure(f"triposr (front view, grid {config.mesh_resolution})", single.load,
                            lambda: single.build_mesh(front), args.repeat))
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    rss_gb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(f"device: {device}; weights: {args.weights} ({', '.join(sorted(pulled))})")
    for row in rows:
        print(f"{row['adapter']}: load {row['load_s']} s, call median {row['median_s']} s "
              f"(worst {row['worst_s']} s), CUDA peak {row['cuda_peak_mb']} MB")
    print(f"peak RSS {rss_gb:.2f} GB")
    if args.json is not None:
        args.json.write_text(json.dumps({"device": device, "torch": torch.__version__, "weights": str(args.weights),
                                         "repeat": args.repeat, "steps": args.steps, "side": args.side,
                                         "rows": rows, "peak_rss_gb": rss_gb}, indent=2) + "\n")


if __name__ == "__main__":
    main()
