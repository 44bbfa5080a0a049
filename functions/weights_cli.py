"""`dropfit weights ...`: fetch the GPU models' weights, check them, ship them to the Modal volume, list licences."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from infra.settings import Settings
from pipeline.backends.table import BACKENDS, ProfileError
from pipeline.backends.weights import MODELS, WeightsError, pull, read_manifest, upload_plan, verify, weights_for

weights_app = typer.Typer(
    help="the GPU models' weights: pull them from the hub once, verify them against their manifest, upload "
    "them to the Modal volume; list every backend's licence. Adapters load only from the weights folder "
    "(DROPFIT_WEIGHTS_DIR, default <model cache>/weights) and never download while a job runs.",
    no_args_is_help=True,
)
console = Console()

Only = Annotated[list[str] | None, typer.Option(
    "--only", help=f"a model key, repeatable: {', '.join(MODELS)} (default: all)")]


def _default_dir() -> Path:
    return Settings().models().weights


def _keys(only: list[str] | None) -> list[str]:
    unknown = [key for key in only or [] if key not in MODELS]
    if unknown:
        raise typer.BadParameter(f"unknown model {', '.join(unknown)}: use {', '.join(MODELS)}", param_hint="--only")
    return list(only) if only else list(MODELS)


@weights_app.command("pull")
def pull_command(
    to: Annotated[Path | None, typer.Option("--to", help="the weights folder (default: DROPFIT_WEIGHTS_DIR or "
                                            "<model cache>/weights)")] = None,
    only: Only = None,
    profile: Annotated[str | None, typer.Option(
        "--profile", help="pull only what this profile uses (cpu, gpu, commercial-safe)")] = None,
) -> None:
    """Download the pinned models from the hub and write the weights manifest.

    Fetches each model into <folder>/<key>/, then writes <folder>/weights-manifest.json (every file's size and
    sha256). Run it where the hub is reachable, or inside Modal. The try-on base model (FLUX.1-Fill-dev) is
    gated: accept its licence on the hub and set HF_TOKEN. Safe to run again: files already there are kept."""
    folder = (to or _default_dir()).resolve()
    keys = _keys(only)
    if profile is not None:
        try:
            keys = [k for k in keys if k in weights_for(BACKENDS.plan(profile))]
        except ProfileError as exc:
            raise typer.BadParameter(str(exc), param_hint="--profile") from exc
    for key in keys:
        unpinned = [s.repo_id for s in MODELS[key].sources if not s.pinned]
        note = f" [yellow](unpinned: {', '.join(unpinned)})[/]" if unpinned else ""
        console.print(f"pulling {key} (~{MODELS[key].approx_gb:g} GB){note}")
    try:
        manifest = pull(folder, keys)
    except ImportError as exc:
        console.print(f"[red]pull needs huggingface_hub[/] (in the gpu extra: pip install -e '.[gpu]'): {exc}")
        raise typer.Exit(1) from exc
    except WeightsError as exc:
        console.print(f"[red]pull failed[/]: {exc}", highlight=False)
        raise typer.Exit(1) from exc
    files = sum(len(manifest.models[k].files) for k in keys)
    console.print(f"[green]pulled[/] {', '.join(keys) or 'nothing'} into {folder} ({files} files, manifest written)")


@weights_app.command("verify")
def verify_command(
    weights_dir: Annotated[Path | None, typer.Option(
        "--dir", help="the weights folder (default: DROPFIT_WEIGHTS_DIR or <model cache>/weights)")] = None,
    only: Only = None,
) -> None:
    """Check the weights against their manifest (sizes, sha256, pinned revisions).

    Checks every model the manifest lists (or --only those): each file present with its size and sha256, pulled
    at the revisions the code pins. Exit 1, naming what is wrong and the command that fixes it."""
    folder = (weights_dir or _default_dir()).resolve()
    try:
        keys = _keys(only) if only else [k for k in read_manifest(folder).models if k in MODELS]
    except WeightsError as exc:
        console.print(f"[red]not verified[/]: {exc}", highlight=False)
        raise typer.Exit(1) from exc
    failed = False
    for key in keys:
        try:
            console.print(f"[green]ok[/] {key}: {verify(folder, key)}", highlight=False)
        except WeightsError as exc:
            failed = True
            console.print(f"[red]bad[/] {exc}", highlight=False)
    absent = [k for k in MODELS if k not in keys]
    if absent:
        console.print(f"not pulled (not checked): {', '.join(absent)}")
    raise typer.Exit(1 if failed else 0)


@weights_app.command("upload")
def upload_command(
    volume: Annotated[str, typer.Option("--volume", help="the Modal volume (created if missing), e.g. "
                                        "dropfit-models")],
    source: Annotated[Path | None, typer.Option("--from", help="the local weights folder (default: "
                                                "DROPFIT_WEIGHTS_DIR or <model cache>/weights)")] = None,
    remote: Annotated[str, typer.Option("--remote-path", help="where in the volume; the phases mount it as the "
                                        "model cache, so /weights is <cache>/weights")] = "/weights",
) -> None:
    """Verify the local weights (hashing every file), then upload them to a Modal volume.

    Uploads every file the manifest lists, an upload stamp per model (so the phases' containers, which mount the
    volume read-only, do not hash ~40 GB again at each cold start), then the manifest, under --remote-path (needs
    Modal credentials: `modal token new`). Existing files there are overwritten."""
    import modal

    folder = (source or _default_dir()).resolve()
    try:
        files = upload_plan(folder)
    except WeightsError as exc:
        console.print(f"[red]not uploaded[/]: {exc}", highlight=False)
        raise typer.Exit(1) from exc
    target = modal.Volume.from_name(volume, create_if_missing=True)
    with target.batch_upload(force=True) as batch:
        for local, relative in files:
            batch.put_file(local if isinstance(local, Path) else io.BytesIO(local), f"{remote.rstrip('/')}/{relative}")
    console.print(f"[green]uploaded[/] {len(files)} files from {folder} to volume {volume} at {remote}")


@weights_app.command("list")
def list_command(
    markdown: Annotated[bool, typer.Option("--markdown", help="print the README's licence table (markdown) only")]
    = False,
) -> None:
    """Every backend's licence and whether a commercial user may run it; the weights pull fetches.

    Backends: what each serves, its licence, commercial use, the profiles using it. Weights: the hub repo,
    revision (unpinned ones are flagged) and rough size of each model `pull` fetches."""
    if markdown:
        print(BACKENDS.licence_table(), end="")
        return
    backends = Table(title="backends and licences")
    for column in ("backend", "serves", "licence", "commercial use", "profiles"):
        backends.add_column(column, overflow="fold")
    for b in BACKENDS.rows:
        verdict = "[green]yes[/]" if BACKENDS.commercial_use(b.key) else f"[red]no[/]: {b.why}"
        backends.add_row(b.key, ", ".join(b.serves), b.licence, verdict, ", ".join(BACKENDS.profiles_using(b.key)))
    console.print(backends)
    weights = Table(title="weights (dropfit weights pull)")
    for column in ("key", "backend", "hub repo", "revision", "~GB"):
        weights.add_column(column, overflow="fold")
    for spec in MODELS.values():
        for i, s in enumerate(spec.sources):
            revision = s.revision if s.pinned else f"{s.revision} [yellow](unpinned)[/]"
            weights.add_row(spec.key if i == 0 else "", spec.backend if i == 0 else "", s.repo_id, revision,
                            f"{spec.approx_gb:g}" if i == 0 else "")
    console.print(weights)
