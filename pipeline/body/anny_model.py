"""Load anny once per process from a project-controlled cache folder, building that cache on first use.

anny builds its model data on first use (~60 s, ~790 MB) and caches it under `ANNY_CACHE_DIR`, which
defaults to the home directory. Here the folder is always explicit: the caller's, else `anny/` under the
project's model cache (`pipeline.backends.config.default_cache_dir()`; `DROPFIT_MODEL_CACHE_DIR` in the
settings picks another). `dropfit models prepare` builds it. torch and anny are imported inside functions.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from pipeline.backends import config

if TYPE_CHECKING:
    from pipeline.body.rig import Rig

SKINNING = "lbs"  # dense linear blend skinning in torch: never imports anny's heavy `warp` dependency

log = structlog.get_logger(__name__)
_lock = threading.Lock()
_rigs: dict[Path, Rig] = {}


def default_cache_dir() -> Path:
    """anny's folder in the project's model cache."""
    return config.default_cache_dir() / "anny"


def is_prepared(cache_dir: Path) -> bool:
    """Whether anny's compacted model data and the rig's bases are already cached in `cache_dir`."""
    return any(cache_dir.glob("v*/build_compact_model_data_*.safetensors")) and rig_cache_path(cache_dir).is_file()


def prepare(cache_dir: Path | None = None) -> float:
    """Build anny's cache in `cache_dir` once; the seconds it took, 0.0 when it was already built."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if is_prepared(folder):
        return 0.0
    start = time.perf_counter()
    cached_rig(build_anny(folder), folder)
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
    folder = (Path(cache_dir) if cache_dir is not None else default_cache_dir()).resolve()
    with _lock:
        if folder not in _rigs:
            _rigs[folder] = cached_rig(build_anny(folder), folder)
        return _rigs[folder]


def rig_cache_path(cache_dir: Path) -> Path:
    """Where the rig's bases for this anny version and this code's `RIG_CACHE_VERSION` are kept."""
    from pipeline.body.rig import RIG_CACHE_VERSION, SAMPLE_SPACING_M

    return Path(cache_dir) / f"rig-v{RIG_CACHE_VERSION}-anny{anny_version()}-s{SAMPLE_SPACING_M}.pt"


def cached_rig(model: Any, cache_dir: Path) -> Rig:
    """`Rig.from_anny(model)`, its bases read from the cache file when there is one (about 1 s of a process's
    first fit on 2 cores, half of it finding the extreme vertices), else computed and written there for the
    next process (atomically: a temporary file renamed into place)."""
    import torch

    from pipeline.body.rig import Rig

    path = rig_cache_path(cache_dir)
    if path.is_file():
        try:
            return Rig.from_bases(model, torch.load(path, weights_only=True))
        except (OSError, RuntimeError, KeyError, ValueError, EOFError, pickle.UnpicklingError) as err:  # rebuilt below
            log.warning("rig_cache.unreadable", path=str(path), error=str(err))
    rig = Rig.from_anny(model)
    partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        torch.save(rig.bases(), partial)
        os.replace(partial, path)
    except (OSError, RuntimeError) as err:  # a read-only or missing cache folder: computed again next time
        log.warning("rig_cache.not_written", path=str(path), error=str(err))
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
    return rig


def anny_version() -> str:
    """The installed anny package's version, without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("anny")
    except PackageNotFoundError:
        return "unknown"
