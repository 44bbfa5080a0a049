"""torchvision for the CPU tests: PyPI's build, imported without its C++ operators.

PyPI's torchvision 0.28 is built against CUDA torch: its `_C` extension cannot load next to the CPU torch the
tests run on, and its import then fails, because it registers fake kernels for two operators (nms, qnms) that
only the extension defines. hy3dgen (the multi-view 3D adapter's library) imports torchvision for its image
transforms only, which are plain torch. So `make setup` installs torchvision into .cache/torchvision, outside
the venv (inside it, transformers and diffusers would find it and the product's CPU path would import it), and
`enable()` declares those two operators' schemas, without kernels, and imports it from there. Its C++ operators
(nms, roi_align, ...) then raise torchvision's own "Couldn't load custom C++ ops" if called; nothing here calls
them. Where torchvision imports as installed (the GPU image), `enable()` leaves it alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

FOLDER = Path(__file__).resolve().parents[1] / ".cache" / "torchvision"
OPERATORS = ("nms", "qnms")  # the ones torchvision 0.28 registers fakes for unconditionally
_library: object = None  # the torch.library handle that owns the declared schemas (kept alive)


def enable() -> str | None:
    """Make `import torchvision` work; None when it does, else why it cannot (for a skip reason)."""
    global _library
    if _imports():
        return None
    if not (FOLDER / "torchvision" / "__init__.py").is_file():
        return f"torchvision is not in {FOLDER}: run `make setup`"
    import torch

    if _library is None:
        _library = torch.library.Library("torchvision", "DEF")
        for name in OPERATORS:
            _library.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")  # type: ignore[attr-defined]
    if str(FOLDER) not in sys.path:
        sys.path.append(str(FOLDER))
    return None if _imports() else f"torchvision in {FOLDER} does not import next to torch {torch.__version__}"


def _imports() -> bool:
    try:
        import torchvision.transforms  # noqa: F401
    except Exception:  # noqa: BLE001 - a CUDA build next to CPU torch raises RuntimeError at import
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        return False
    return True
