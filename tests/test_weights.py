"""The weights folder: manifest, the check at load, pull with a fake hub, and the `dropfit weights` CLI."""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from functions.cli import app
from pipeline.backends.weights import (
    MANIFEST_NAME,
    MODELS,
    STAMP_DIR,
    WeightsError,
    default_stamp_dir,
    pull,
    read_manifest,
    sha256_file,
    upload_plan,
    verify,
    write_manifest,
)

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Stands in for huggingface_hub.snapshot_download: writes a small file for every pattern (a glob gets
    one file inside its folder) and the per-file commit metadata huggingface_hub keeps in the local_dir."""

    def __init__(self, skip: tuple[str, ...] = ()) -> None:
        self.calls: list[dict[str, Any]] = []
        self.skip = skip

    def __call__(self, *, repo_id: str, revision: str, allow_patterns: list[str], local_dir: str) -> str:
        self.calls.append({"repo_id": repo_id, "revision": revision, "allow_patterns": allow_patterns,
                           "local_dir": local_dir})
        root = Path(local_dir)
        for pattern in allow_patterns:
            if any(fnmatch.fnmatch(pattern, s) for s in self.skip):
                continue
            name = pattern.replace("*", "weights.bin")
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(f"{repo_id}:{name}".encode() * 100)
            meta = root / ".cache" / "huggingface" / "download" / f"{name}.metadata"
            meta.parent.mkdir(parents=True, exist_ok=True)
            meta.write_text(f"{COMMIT}\netag\n0\n")
        return local_dir


def sam_folder(weights: Path) -> Path:
    """The files of the `sam` model, written by hand (no hub)."""
    folder = weights / "sam"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "sam"}')
    (folder / "preprocessor_config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(os.urandom(3 * 1024 * 1024 + 7))  # > one chunk would be 8 MiB
    return folder


def test_manifest_round_trip(tmp_path: Path) -> None:
    folder = sam_folder(tmp_path)
    manifest = write_manifest(tmp_path)
    assert list(manifest.models) == ["sam"]
    assert read_manifest(tmp_path) == manifest
    record = manifest.models["sam"]
    assert record.backend == "sam"
    assert [s.revision for s in record.sources] == [MODELS["sam"].sources[0].revision]
    by_path = {f.path: f for f in record.files}
    assert set(by_path) == {"config.json", "preprocessor_config.json", "model.safetensors"}
    assert by_path["model.safetensors"].size == 3 * 1024 * 1024 + 7
    assert by_path["model.safetensors"].sha256 == sha256_file(folder / "model.safetensors")
    assert verify(tmp_path, "sam") == folder


def test_write_manifest_keeps_the_other_models(tmp_path: Path) -> None:
    sam_folder(tmp_path)
    write_manifest(tmp_path)
    (tmp_path / "yolo").mkdir()
    (tmp_path / "yolo" / "yolo11n.pt").write_bytes(b"weights")
    assert set(write_manifest(tmp_path, ["yolo"]).models) == {"sam", "yolo"}
    with pytest.raises(WeightsError, match="no files under .*multiview"):
        write_manifest(tmp_path, ["multiview"])


def test_verify_catches_a_changed_byte(tmp_path: Path) -> None:
    folder = sam_folder(tmp_path)
    write_manifest(tmp_path)
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[1000] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))  # same size, new mtime
    with pytest.raises(WeightsError) as caught:
        verify(tmp_path, "sam")
    message = str(caught.value)
    assert "model.safetensors" in message and "sha256" in message
    assert f"dropfit weights pull --to {tmp_path} --only sam" in message


def test_verify_catches_a_missing_file_and_a_truncated_one(tmp_path: Path) -> None:
    folder = sam_folder(tmp_path)
    write_manifest(tmp_path)
    (folder / "config.json").write_text("{}")
    with pytest.raises(WeightsError, match="config.json has 2 bytes, the manifest says"):
        verify(tmp_path, "sam")
    (folder / "config.json").unlink()
    with pytest.raises(WeightsError, match=r"config.json is missing: run `dropfit weights pull"):
        verify(tmp_path, "sam")


def test_verify_says_when_there_is_no_manifest_or_no_such_model(tmp_path: Path) -> None:
    sam_folder(tmp_path)
    with pytest.raises(WeightsError, match=f"no weights manifest at {tmp_path / MANIFEST_NAME}.*dropfit weights pull"):
        verify(tmp_path, "sam")
    write_manifest(tmp_path)
    with pytest.raises(WeightsError, match="has no 'yolo' model.*--only yolo"):
        verify(tmp_path, "yolo")
    with pytest.raises(WeightsError, match="unknown weights key 'sam2'"):
        verify(tmp_path, "sam2")
    (tmp_path / MANIFEST_NAME).write_text('{"models": 3}')
    with pytest.raises(WeightsError, match="is not a weights manifest"):
        verify(tmp_path, "sam")


def test_verify_refuses_weights_pulled_at_another_revision(tmp_path: Path) -> None:
    sam_folder(tmp_path)
    write_manifest(tmp_path)
    raw = json.loads((tmp_path / MANIFEST_NAME).read_text())
    raw["models"]["sam"]["sources"][0]["revision"] = "main"
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(WeightsError, match="came from .*'main'.*the code pins"):
        verify(tmp_path, "sam")


def test_a_stamp_skips_rehashing_while_size_and_mtime_hold(tmp_path: Path) -> None:
    folder = sam_folder(tmp_path)
    write_manifest(tmp_path)
    verify(tmp_path, "sam")
    assert (tmp_path / STAMP_DIR / "sam.json").is_file()
    target = folder / "model.safetensors"
    before = target.stat()
    data = bytearray(target.read_bytes())
    data[0] ^= 0xFF
    target.write_bytes(bytes(data))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert verify(tmp_path, "sam") == folder  # the documented trade-off: same size and mtime = not re-hashed
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns + 1))
    with pytest.raises(WeightsError, match="sha256"):
        verify(tmp_path, "sam")


def flip_a_byte_keeping_size_and_mtime(target: Path) -> None:
    """A change `verify` sees only by hashing."""
    before = target.stat()
    data = bytearray(target.read_bytes())
    data[0] ^= 0xFF
    target.write_bytes(bytes(data))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_read_only_weights_folder_is_hashed_once_not_at_every_load(tmp_path: Path) -> None:
    """As on Modal, where the volume is mounted read-only: nothing can be written under the weights folder (here
    `.verified` is a file), so the stamp goes to the default stamp folder and the second verify does not hash."""
    import shutil

    weights = tmp_path / "weights"
    folder = sam_folder(weights)
    write_manifest(weights)
    (weights / STAMP_DIR).write_text("")  # mkdir .verified fails, as on a read-only mount
    try:
        assert verify(weights, "sam") == folder
        assert (default_stamp_dir(weights) / "sam.json").is_file()
        flip_a_byte_keeping_size_and_mtime(folder / "model.safetensors")
        assert verify(weights, "sam") == folder  # stamped: not hashed again
        with pytest.raises(WeightsError, match="sha256"):
            verify(weights, "sam", rehash=True)
    finally:
        shutil.rmtree(default_stamp_dir(weights), ignore_errors=True)


def test_the_upload_stamp_spares_the_volume_a_rehash_of_what_upload_hashed(tmp_path: Path) -> None:
    """`dropfit weights upload` ships an upload stamp: the volume's copy (new mtimes, read-only) is not hashed
    at load while the manifest entry and every size are as stamped; a size or manifest change is still caught."""
    local, volume = tmp_path / "local", tmp_path / "volume"
    pull(local, ["sam"], download=FakeHub())
    for source, relative in upload_plan(local):  # what the upload puts into the volume, in its order
        target = volume / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes() if isinstance(source, Path) else source)
    assert (volume / STAMP_DIR / "sam.uploaded.json").is_file() and not (volume / STAMP_DIR / "sam.json").exists()
    flip_a_byte_keeping_size_and_mtime(volume / "sam" / "model.safetensors")
    stamps = tmp_path / "stamps"
    assert verify(volume, "sam", stamp_dir=stamps) == volume / "sam"  # trusted: upload hashed these bytes
    assert not stamps.exists()  # it did not hash, so it wrote no stamp of its own
    (volume / "sam" / "config.json").write_text("{}")
    with pytest.raises(WeightsError, match="config.json has 2 bytes"):
        verify(volume, "sam", stamp_dir=stamps)
    raw = json.loads((local / MANIFEST_NAME).read_text())
    raw["models"]["sam"]["files"][0]["sha256"] = "0" * 64  # another manifest entry: the stamp is not its
    (volume / MANIFEST_NAME).write_text(json.dumps(raw))
    (volume / "sam" / "config.json").write_bytes((local / "sam" / "config.json").read_bytes())
    with pytest.raises(WeightsError, match="sha256"):
        verify(volume, "sam", stamp_dir=stamps)


def test_verify_works_when_no_stamp_can_be_written(tmp_path: Path) -> None:
    folder = sam_folder(tmp_path)
    write_manifest(tmp_path)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    assert verify(tmp_path, "sam", stamp_dir=blocker / "stamps") == folder
    assert verify(tmp_path, "sam", stamp_dir=tmp_path / "elsewhere") == folder
    assert (tmp_path / "elsewhere" / "sam.json").is_file()


def test_pull_fetches_each_source_and_writes_the_manifest(tmp_path: Path) -> None:
    hub = FakeHub()
    manifest = pull(tmp_path, ["tryon", "sam"], download=hub)
    assert [(c["repo_id"], c["revision"]) for c in hub.calls] == [
        (s.repo_id, s.revision) for key in ("tryon", "sam") for s in MODELS[key].sources]
    assert hub.calls[0]["local_dir"] == str(tmp_path / "tryon" / "flux-fill")
    assert hub.calls[0]["allow_patterns"] == list(MODELS["tryon"].sources[0].allow_patterns)
    tryon = manifest.models["tryon"]
    paths = {f.path for f in tryon.files}
    assert "lora/pytorch_lora_weights.safetensors" in paths and "flux-fill/model_index.json" in paths
    assert not any(".cache" in p for p in paths)  # the hub's own metadata is not a weight
    assert [s.commit for s in tryon.sources] == [COMMIT, COMMIT]
    assert read_manifest(tmp_path) == manifest
    assert verify(tmp_path, "tryon") == tmp_path / "tryon"
    assert verify(tmp_path, "sam") == tmp_path / "sam"


def test_pull_says_when_the_hub_lacks_a_pinned_file_or_fails(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="has no file matching model.safetensors"):
        pull(tmp_path, ["sam"], download=FakeHub(skip=("model.safetensors",)))
    assert not (tmp_path / MANIFEST_NAME).exists()

    def offline(**kwargs: Any) -> str:
        raise ConnectionError("no route to the hub")

    with pytest.raises(WeightsError, match="pulling yolo from Ultralytics/YOLO11@main failed: no route") as caught:
        pull(tmp_path, ["yolo"], download=offline)
    assert isinstance(caught.value.__cause__, ConnectionError)
    with pytest.raises(WeightsError, match="unknown weights key 'sdxl'"):
        pull(tmp_path, ["sdxl"], download=FakeHub())


def test_upload_plan_ships_verified_files_and_the_manifest_last(tmp_path: Path) -> None:
    pull(tmp_path, ["yolo", "sam"], download=FakeHub())
    plan = upload_plan(tmp_path)
    assert plan[-1] == (tmp_path / MANIFEST_NAME, MANIFEST_NAME)
    remotes = [remote for _, remote in plan]
    assert "yolo/yolo11n.pt" in remotes and all(isinstance(local, bytes) or local.is_file() for local, _ in plan)
    assert remotes[-3:-1] == [f"{STAMP_DIR}/sam.uploaded.json", f"{STAMP_DIR}/yolo.uploaded.json"]
    (tmp_path / "yolo" / "yolo11n.pt").unlink()
    with pytest.raises(WeightsError, match="yolo11n.pt is missing"):
        upload_plan(tmp_path)


# ---- the CLI -------------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_help_explains_the_commands() -> None:
    result = runner.invoke(app, ["weights", "--help"])
    assert result.exit_code == 0
    for word in ("pull", "verify", "upload", "list", "never download"):
        assert word in result.output
    pull_help = runner.invoke(app, ["weights", "pull", "--help"]).output
    assert "--to" in pull_help and "--only" in pull_help and "HF_TOKEN" in pull_help


def test_cli_list_prints_every_backend_and_model() -> None:
    result = runner.invoke(app, ["weights", "list"])
    assert result.exit_code == 0
    for word in ("ultralytics-yolo", "insightface", "gemini", "anny", "AGPL-3.0", "tryon", "multiview", "unpinned"):
        assert word in result.output


def test_cli_verify_passes_a_good_folder_and_fails_a_tampered_one(tmp_path: Path) -> None:
    pull(tmp_path, ["sam"], download=FakeHub())
    good = runner.invoke(app, ["weights", "verify", "--dir", str(tmp_path)])
    assert good.exit_code == 0, good.output
    assert "ok sam" in good.output and "not pulled" in good.output
    (tmp_path / "sam" / "config.json").unlink()
    bad = runner.invoke(app, ["weights", "verify", "--dir", str(tmp_path)])
    assert bad.exit_code == 1
    assert "config.json" in bad.output and "dropfit weights pull" in bad.output
    empty = runner.invoke(app, ["weights", "verify", "--dir", str(tmp_path / "none")])
    assert empty.exit_code == 1 and "no weights manifest" in empty.output


def test_cli_pull_refuses_an_unknown_key_and_pulls_nothing_for_cpu(tmp_path: Path) -> None:
    assert runner.invoke(app, ["weights", "pull", "--to", str(tmp_path), "--only", "sdxl"]).exit_code == 2
    nothing = runner.invoke(app, ["weights", "pull", "--to", str(tmp_path), "--profile", "cpu"])
    assert nothing.exit_code == 0, nothing.output
    assert read_manifest(tmp_path).models == {}
