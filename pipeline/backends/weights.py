"""The GPU models' weights: what to fetch (`MODELS`), a manifest of what was fetched, and the check at load.

A weights folder holds one sub-folder per model key (`tryon/`, `insightface/`, `yolo/`, `sam/`, `multiview/`,
`refiner/`, ...) and `weights-manifest.json`: per key, the hub repos and revisions it came from and every file
with its size and sha256. `pull` fills the folder from the hub (run where the hub is reachable, or inside Modal), then
writes the manifest; an adapter calls `verify(folder, key)` before it loads and gets the model's folder back,
or a `WeightsError` that names the missing or changed file and the command that fixes it. Nothing here
downloads at request time: only `pull` touches the network, and only when a person runs it.

Hashing streams each file in chunks (tens of GB take a minute or more). Two stamps spare it:
- A verified model leaves a stamp (each file's size and mtime) under `.verified/`; a later `verify` whose files
  still match it skips re-hashing. Where the weights folder cannot be written (a Modal volume mounted
  read-only), the stamp goes to `stamp_dir`, by default a folder under the system's temporary directory keyed by
  the weights folder's path (`default_stamp_dir`), so a container hashes its weights once, not at every load.
- `dropfit weights upload` hashes every file before it ships it and ships an upload stamp with them
  (`.verified/<key>.uploaded.json`: the manifest entry's hash and each file's size; a volume gives files new
  mtimes, so sizes are what can be checked there). A container that finds the upload stamp of the manifest entry
  it reads, with every size as stamped, does not hash: what the volume holds was hashed where it came from, and
  Modal's upload checks each block it stores. The trade-off, as for the mtime stamp: a file changed in place with
  its size kept is not seen; `dropfit weights verify` on a local copy still hashes everything it has not stamped.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.backends.table import BACKENDS, Source, Weights

MANIFEST_NAME = "weights-manifest.json"
STAMP_DIR = ".verified"
UPLOAD_STAMP = "{key}.uploaded.json"  # under STAMP_DIR, written into the volume by `dropfit weights upload`
HUB_METADATA = ".cache"  # huggingface_hub's per-file download metadata inside a local_dir; never in the manifest
CHUNK = 8 << 20


class WeightsError(Exception):
    """The weights a backend needs are missing, changed, or pinned differently: a deployment error, not a
    job's. The message names the file and the command that fixes it."""


@dataclass(frozen=True)
class WeightsSpec:
    """One model's weights as the weights folder holds them: its sub-folder, the backend that loads them (its row
    of the backend table) and where they come from."""

    key: str
    backend: str  # the backend (pipeline.backends.table.BACKENDS) that loads them
    sources: tuple[Source, ...]
    approx_gb: float  # roughly, to know before pulling

    @property
    def licence(self) -> str:
        return BACKENDS[self.backend].licence

    @property
    def commercial(self) -> bool:
        return BACKENDS[self.backend].commercial

    @property
    def serves(self) -> tuple[str, ...]:
        return BACKENDS[self.backend].serves


MODELS: dict[str, WeightsSpec] = {row.weights.key: WeightsSpec(row.weights.key, row.key, row.weights.sources,
                                                               row.weights.approx_gb)
                                  for row in BACKENDS.rows if isinstance(row.weights, Weights)}
WEIGHTS_BY_BACKEND: dict[str, str] = {spec.backend: spec.key for spec in MODELS.values()}


# ---- the manifest (written by `pull`, read at load) ---------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FileRecord(_Strict):
    path: str  # posix, relative to the model's folder
    size: int
    sha256: str


class SourceRecord(_Strict):
    repo_id: str
    revision: str  # as pinned in MODELS when pulled
    commit: str | None = None  # the commit the hub resolved it to, when huggingface_hub recorded it
    subdir: str = ""


class ModelRecord(_Strict):
    backend: str
    sources: tuple[SourceRecord, ...]
    files: tuple[FileRecord, ...]


class WeightsManifest(_Strict):
    schema_version: Literal[1] = 1
    models: dict[str, ModelRecord] = {}


def spec(key: str) -> WeightsSpec:
    if key not in MODELS:
        raise WeightsError(f"unknown weights key {key!r}: use one of {', '.join(MODELS)}")
    return MODELS[key]


def weights_for(plan: Mapping[str, str | None]) -> tuple[str, ...]:
    """The weights keys a backend plan (`BackendTable.plan`) needs, in table order."""
    return BACKENDS.weights_for(plan)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _model_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and HUB_METADATA not in p.relative_to(folder).parts)


def _resolved_commit(folder: Path) -> str | None:
    """The commit huggingface_hub wrote into its per-file metadata (first line), if all files agree."""
    commits = {p.read_text().split("\n", 1)[0].strip()
               for p in (folder / HUB_METADATA / "huggingface" / "download").rglob("*.metadata")}
    return commits.pop() if len(commits) == 1 else None


def _record(weights_dir: Path, key: str) -> ModelRecord:
    model = spec(key)
    folder = weights_dir / key
    files = _model_files(folder) if folder.is_dir() else []
    if not files:
        raise WeightsError(f"no files under {folder}: run `dropfit weights pull --to {weights_dir} --only {key}`")
    sources = tuple(SourceRecord(repo_id=s.repo_id, revision=s.revision, subdir=s.subdir,
                                 commit=_resolved_commit(folder / s.subdir)) for s in model.sources)
    return ModelRecord(backend=model.backend, sources=sources, files=tuple(
        FileRecord(path=p.relative_to(folder).as_posix(), size=p.stat().st_size, sha256=sha256_file(p))
        for p in files))


def read_manifest(weights_dir: Path) -> WeightsManifest:
    path = weights_dir / MANIFEST_NAME
    if not path.is_file():
        raise WeightsError(f"no weights manifest at {path}: the weights were never pulled there; "
                           f"run `dropfit weights pull --to {weights_dir}`")
    try:
        return WeightsManifest.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise WeightsError(f"{path} is not a weights manifest ({exc.error_count()} problems, first: "
                           f"{exc.errors()[0]['msg']}); run `dropfit weights pull --to {weights_dir}`") from exc


def write_manifest(weights_dir: Path, keys: Iterable[str] | None = None) -> WeightsManifest:
    """Hash the models' folders (`keys`; None = every MODELS key with a folder) into the manifest, keeping
    the other models' entries. Written atomically, last: a manifest means the files it lists are complete."""
    chosen = list(keys) if keys is not None else [k for k in MODELS if (weights_dir / k).is_dir()]
    path = weights_dir / MANIFEST_NAME
    models = dict(read_manifest(weights_dir).models) if path.is_file() else {}
    models.update({key: _record(weights_dir, key) for key in chosen})
    manifest = WeightsManifest(models=dict(sorted(models.items())))
    weights_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(manifest.model_dump_json(indent=2) + "\n")
    os.replace(tmp, path)
    return manifest


# ---- the check at load ----------------------------------------------------------------------------------


def _record_hash(record: ModelRecord) -> str:
    return hashlib.sha256(record.model_dump_json().encode()).hexdigest()


def _stamp(record: ModelRecord, folder: Path) -> dict[str, Any]:
    files = {}
    for f in record.files:
        stat = (folder / f.path).stat()
        files[f.path] = [stat.st_size, stat.st_mtime_ns]
    return {"record": _record_hash(record), "files": files}


def _stamp_matches(stamp_path: Path, record: ModelRecord, folder: Path) -> bool:
    try:
        return json.loads(stamp_path.read_text()) == _stamp(record, folder)
    except (OSError, ValueError):
        return False


def _write_stamp(stamp_paths: Iterable[Path], record: ModelRecord, folder: Path) -> Path | None:
    """Write the stamp at the first of `stamp_paths` that can be written; None when none can (the next load
    hashes again, which is slower but as safe)."""
    stamp = json.dumps(_stamp(record, folder))
    for stamp_path in stamp_paths:
        try:
            stamp_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = stamp_path.with_name(f"{stamp_path.name}.{os.getpid()}.tmp")
            tmp.write_text(stamp)
            os.replace(tmp, stamp_path)
            return stamp_path
        except OSError:
            continue
    return None


def default_stamp_dir(weights_dir: Path) -> Path:
    """Where stamps go when the weights folder cannot take them: the system's temporary directory (a container's
    own disk on Modal), one folder per weights folder."""
    digest = hashlib.sha256(str(weights_dir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "dropfit-verified" / digest


def upload_stamp(record: ModelRecord) -> bytes:
    """The upload stamp of a model's manifest entry, hashed just before: the entry's hash and each file's size."""
    return (json.dumps({"record": _record_hash(record), "sizes": {f.path: f.size for f in record.files}},
                       indent=1) + "\n").encode()


def _upload_stamp_matches(weights_dir: Path, key: str, record: ModelRecord) -> bool:
    """Is there an upload stamp for exactly this manifest entry? (The sizes were checked by the caller.)"""
    try:
        stamp = json.loads((weights_dir / STAMP_DIR / UPLOAD_STAMP.format(key=key)).read_text())
    except (OSError, ValueError):
        return False
    return stamp == json.loads(upload_stamp(record))


def _check_pins(weights_dir: Path, key: str, record: ModelRecord) -> None:
    pinned = [(s.repo_id, s.revision) for s in spec(key).sources]
    pulled = [(s.repo_id, s.revision) for s in record.sources]
    if pinned != pulled:
        raise WeightsError(f"the {key} weights in {weights_dir} came from {pulled}, the code pins {pinned}: "
                           f"run `dropfit weights pull --to {weights_dir} --only {key}`")


def verify(weights_dir: Path, key: str, *, stamp_dir: Path | None = None, rehash: bool = False) -> Path:
    """The model's folder (`weights_dir / key`) once every file the manifest lists is there with its size and
    sha256, and the manifest's repos and revisions are the ones MODELS pins; else a `WeightsError` saying what
    is wrong and which command fixes it. Files the manifest does not list are ignored.

    The sha256 check is skipped when a stamp says these files were hashed (module docstring): a stamp of this
    folder's sizes and mtimes (in `stamp_dir` if given, else in the folder's `.verified/`, else in
    `default_stamp_dir`), or the upload stamp `dropfit weights upload` shipped with them; `rehash` hashes
    regardless."""
    spec(key)
    fix = f"run `dropfit weights pull --to {weights_dir} --only {key}`"
    record = read_manifest(weights_dir).models.get(key)
    if record is None:
        raise WeightsError(f"the weights manifest in {weights_dir} has no {key!r} model: {fix}")
    _check_pins(weights_dir, key, record)
    folder = weights_dir / key
    for f in record.files:
        path = folder / f.path
        if not path.is_file():
            raise WeightsError(f"{key}: {path} is missing: {fix}")
        if path.stat().st_size != f.size:
            raise WeightsError(f"{key}: {path} has {path.stat().st_size} bytes, the manifest says {f.size}: {fix}")
    stamp_paths = [d / f"{key}.json" for d in ([stamp_dir] if stamp_dir is not None
                                               else [weights_dir / STAMP_DIR, default_stamp_dir(weights_dir)])]
    stamped = _upload_stamp_matches(weights_dir, key, record) or any(_stamp_matches(p, record, folder)
                                                                     for p in stamp_paths)
    if stamped and not rehash:
        return folder
    for f in record.files:
        if sha256_file(folder / f.path) != f.sha256:
            raise WeightsError(f"{key}: {folder / f.path} does not match its sha256 in the manifest "
                               f"(changed or corrupt): {fix}")
    _write_stamp(stamp_paths, record, folder)
    return folder


def manifest_lists(weights_dir: Path, key: str, path: str) -> bool:
    """Does the manifest list `path` (posix, relative to the model's folder) among `key`'s files? An optional
    file (the try-on LoRA) is used only when it does, so that `verify` has checked it."""
    record = read_manifest(weights_dir).models.get(key)
    return record is not None and any(f.path == path for f in record.files)


# ---- fetching and shipping ------------------------------------------------------------------------------

Download = Callable[..., Any]  # huggingface_hub.snapshot_download's keyword signature


def _missing_patterns(folder: Path, patterns: Iterable[str]) -> list[str]:
    present = [p.relative_to(folder).as_posix() for p in _model_files(folder)] if folder.is_dir() else []
    return [pattern for pattern in patterns if not fnmatch.filter(present, pattern)]


def pull(weights_dir: Path, keys: Iterable[str] | None = None, *, download: Download | None = None) -> WeightsManifest:
    """Fetch the models (`keys`; None = all of MODELS) from the hub into `weights_dir/<key>/`, then write the
    manifest. `download` defaults to `huggingface_hub.snapshot_download` (gated repos read HF_TOKEN); tests
    pass a fake. Raises `WeightsError` when a download fails or a pinned pattern matched no file."""
    if download is None:
        from huggingface_hub import snapshot_download

        download = snapshot_download
    chosen = [spec(key).key for key in (keys if keys is not None else MODELS)]
    for key in chosen:
        for source in MODELS[key].sources:
            folder = weights_dir / key / source.subdir
            try:
                download(repo_id=source.repo_id, revision=source.revision,
                         allow_patterns=list(source.allow_patterns), local_dir=str(folder))
            except Exception as exc:  # the hub's errors are many; say which model, chain the cause
                raise WeightsError(f"pulling {key} from {source.repo_id}@{source.revision} failed: {exc} "
                                   "(gated repos need HF_TOKEN with the licence accepted on the hub)") from exc
            missing = _missing_patterns(folder, source.allow_patterns)
            if missing:
                raise WeightsError(f"{source.repo_id}@{source.revision} has no file matching "
                                   f"{', '.join(missing)}: fix the pattern in pipeline/backends/table.py")
    return write_manifest(weights_dir, chosen)


def upload_plan(weights_dir: Path) -> list[tuple[Path | bytes, str]]:
    """(local file or bytes, path relative to the weights folder) for every file the manifest lists, then each
    model's upload stamp, then the manifest (last: it says the rest is there), after hashing every file (not
    trusting local stamps: the upload stamp vouches for these bytes): what `dropfit weights upload` puts into the
    volume."""
    manifest = read_manifest(weights_dir)
    plan: list[tuple[Path | bytes, str]] = []
    stamps: list[tuple[Path | bytes, str]] = []
    for key, record in manifest.models.items():
        if key in MODELS:
            verify(weights_dir, key, rehash=True)
            stamps.append((upload_stamp(record), f"{STAMP_DIR}/{UPLOAD_STAMP.format(key=key)}"))
        plan += [(weights_dir / key / f.path, f"{key}/{f.path}") for f in record.files]
    return [*plan, *stamps, (weights_dir / MANIFEST_NAME, MANIFEST_NAME)]
