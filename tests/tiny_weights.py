"""A whole weights folder of tiny random-weight models, as `dropfit weights pull` lays out the real ones, and the
device the GPU adapters' tests run them on.

    .venv/bin/python tests/tiny_weights.py DIR      # then: .venv/bin/python -m bench.gpu_adapters --weights DIR

tryon (FLUX.1 Fill), insightface (buffalo_l ONNX), sam, multiview (Hunyuan3D-2mv) and refiner (SDXL + depth
ControlNet + IP-Adapter), each built from a config
(tests/tiny_*.py), and a manifest with their sizes and sha256, so `verify` accepts the folder. YOLO is left out:
ultralytics builds its model from a yaml at load (tests/test_gpu_vision.py). The multi-view model needs
torchvision (tests/torchvision_cpu.py).

The tests run the tiny models on the CPU (float32) unless DROPFIT_TEST_DEVICE says "cuda" (tools/gpu-check sets
it on a GPU machine): then they build the adapters on CUDA, where each picks its real dtype (bfloat16 for FLUX
Fill and SAM, float16 for Hunyuan3D-2mv). Asking for CUDA where torch sees none is an error, not a quiet
fall-back to the CPU. InsightFace's end-to-end tests stay on ONNX Runtime's CPU provider unless that runtime has
the CUDA provider (tests/test_gpu_vision.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tiny_sdxl import tiny_sdxl_refiner

from pipeline.backends.weights import write_manifest
from tiny_diffusers import tiny_flux_fill
from tiny_hunyuan import write_tiny_hunyuan_mv
from tiny_onnx import write_face_pack
from tiny_transformers import tiny_sam

KEYS = ["tryon", "insightface", "sam", "multiview", "refiner"]
DEVICE_VARIABLE = "DROPFIT_TEST_DEVICE"
DEVICES = ("cpu", "cuda")


def adapter_device() -> str:
    """"cpu" or "cuda", from DROPFIT_TEST_DEVICE (default "cpu"); "cuda" only where torch sees a GPU."""
    device = os.environ.get(DEVICE_VARIABLE, "cpu").strip().lower() or "cpu"
    if device not in DEVICES:
        raise RuntimeError(f"{DEVICE_VARIABLE}={device!r}: use one of {', '.join(DEVICES)}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(f"{DEVICE_VARIABLE}=cuda, but torch {torch.__version__} sees no CUDA device")
    return device


def write_tiny_weights(folder: Path) -> Path:
    tiny_flux_fill(folder / "tryon" / "flux-fill")
    write_face_pack(folder / "insightface" / "models" / "buffalo_l")
    tiny_sam(folder / "sam")
    write_tiny_hunyuan_mv(folder / "multiview" / "hunyuan3d-dit-v2-mv")
    tiny_sdxl_refiner(folder / "refiner")
    write_manifest(folder, KEYS)
    return folder


if __name__ == "__main__":
    from torchvision_cpu import enable

    if len(sys.argv) != 2:
        sys.exit(__doc__)
    missing = enable()
    if missing:
        sys.exit(f"cannot build the multi-view model: {missing}")
    print(write_tiny_weights(Path(sys.argv[1])))
