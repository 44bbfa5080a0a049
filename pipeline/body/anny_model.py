"""Load anny once per process from a project-controlled cache folder, building that cache on first use.

anny builds its model data on first use (~60 s, ~790 MB) and caches it under `ANNY_CACHE_DIR`, which
defaults to the home directory. Here the folder is always explicit: the caller's, else `anny/` under the
project's model cache (`pipeline.backends.config.default_cache_dir()`; `DROPFIT_MODEL_CACHE_DIR` in the
settings picks another). `dropfit models prepare` builds it. torch and anny are imported inside functions.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.backends import config

if TYPE_CHECKING:
    from pipeline.body.rig import Rig

SKINNING = "lbs"  # dense linear blend skinning in torch: never imports anny's heavy `warp` dependency

_lock = threading.Lock()
_rigs: dict[Path, Rig] = {}


def default_cache_dir() -> Path:
    """anny's folder in the project's model cache."""
    return config.default_cache_dir() / "anny"


def is_prepared(cache_dir: Path) -> bool:
    """Whether anny's compacted model data is already cached in `cache_dir`."""
    return any(cache_dir.glob("v*/build_compact_model_data_*.safetensors"))


def prepare(cache_dir: Path | None = None) -> float:
    """Build anny's cache in `cache_dir` once; the seconds it took, 0.0 when it was already built."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if is_prepared(folder):
        return 0.0
    start = time.perf_counter()
    build_anny(folder)
    return time.perf_counter() - start


def build_anny(cache_dir: Path) -> Any:  # an anny.Anny (Any: anny is untyped and imported only here)
    """A float32 anny with LBS skinning, its data read from (or first built into) `cache_dir`."""
    folder = Path(cache_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["ANNY_CACHE_DIR"] = str(folder)  # for anny's own import-time default, should it import later
    import anny
    import anny.paths

    anny.paths.set_anny_cache_path(folder)
    return anny.Anny(skinning_method=SKINNING).float().eval()


def load_rig(cache_dir: Path | None = None) -> Rig:
    """The process-wide `Rig` for `cache_dir`: built on the first call (thread-safe), shared afterwards."""
    from pipeline.body.rig import Rig

    folder = (Path(cache_dir) if cache_dir is not None else default_cache_dir()).resolve()
    with _lock:
        if folder not in _rigs:
            _rigs[folder] = Rig.from_anny(build_anny(folder))
        return _rigs[folder]


def anny_version() -> str:
    """The installed anny package's version, without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("anny")
    except PackageNotFoundError:
        return "unknown"
