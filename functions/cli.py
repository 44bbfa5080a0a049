"""`dropfit`: run try-on jobs on a folder bucket. Every command prints what it did; `--help` explains."""

from __future__ import annotations

import hashlib
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from functions import cloud_cli
from functions import status as status_view
from functions.app import LocalApp, build_local
from functions.incoming import clear_other_formats
from functions.logs import configure
from functions.models_cli import models_app
from functions.progress import ProgressPrinter
from functions.stopping import STOP_SLACK_S, arm_stop_deadline, exit_now, shut_down
from functions.weights_cli import weights_app
from infra.folder_store import FolderStore
from infra.settings import Settings
from infra.watcher import FolderWatcher
from pipeline import layout
from pipeline.manifests import ResultManifest
from pipeline.plan import JobPlan
from pipeline.sample import sample_garment, sample_person
from pipeline.state import job_error, job_status, load_plan, result_manifest, run_manifest
from pipeline.storage import ObjectStore

app = typer.Typer(
    help="dropfit: drop a person photo and a garment photo into a bucket; get the person wearing the garment.\n\n"
    "A bucket here is a folder. Inputs go under incoming/{job_id}/ (person.jpg, garment.jpg, optional job.json) "
    "or catalog/{batch_id}/ (people/, garments/, then batch.json); results appear under results/{job_id}/.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
EXIT_FAILED, EXIT_INCOMPLETE = 1, 3
STOP_GRACE_S = 10.0  # at a stop: how long running tasks may finish before their claims go to another worker
DELIVERY_WAIT_S = 5.0  # `run`, `watch`: how long to wait for deliveries in progress before exiting
SWEEP_DELIVERY_WAIT_S = 30.0  # `sweep`: how long to wait for the deliveries it started
REDELIVER_TICK_S = 5.0  # `watch`: how often it looks for deliveries due between sweeps (the backoff starts at 5 s)

BucketOpt = Annotated[Path, typer.Option("--bucket", "-b", help="the bucket folder (created if missing)")]
LogLevel = Annotated[str, typer.Option("--log-level", help="debug, info, warning or error (logs go to stderr)")]
LogFormat = Annotated[str, typer.Option("--log-format", help="console (for people) or json (for machines)")]


def _settings(log_level: str, log_format: str) -> Settings:
    settings = Settings(log_level=log_level, log_format=log_format)  # type: ignore[arg-type]
    configure(settings.log_format, settings.log_level)
    return settings


def _read_file(path: Path, what: str, kind: str) -> bytes:
    """The file's bytes, or a readable refusal (exit 2) for a path that is missing, a folder or unreadable."""
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a folder, not {kind}", param_hint=what)
    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist", param_hint=what)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"{path} cannot be read ({exc.strerror or exc})", param_hint=what) from exc


def _read_image(path: Path, what: str) -> tuple[bytes, str]:
    ext = layout.image_extension(path.name)
    if ext is None:
        raise typer.BadParameter(f"{path} is not a .jpg, .jpeg, .png or .webp file", param_hint=what)
    return _read_file(path, what, "a photo"), ext


def _open_bucket(bucket: Path, settings: Settings, what: str, **options: Any) -> LocalApp:
    """The local app on the bucket folder (made if missing), or a readable refusal (exit 2) when the path is a
    file, lies inside one, or cannot be made."""
    for path in (bucket, *bucket.parents):
        if path.exists() and not path.is_dir():
            where = "" if path == bucket else f" ({path} is a file)"
            raise typer.BadParameter(f"{bucket} cannot be a bucket{where}: a bucket is a folder; give a folder's "
                                     "path, or a new one to create", param_hint=what)
    try:
        return build_local(bucket, settings, **options)
    except OSError as exc:
        raise typer.BadParameter(f"{bucket} cannot be used as a bucket ({exc.strerror or exc})",
                                 param_hint=what) from exc


def _default_job_id(*parts: bytes) -> str:
    return "job-" + hashlib.sha256(b"\x1f".join(parts)).hexdigest()[:12]


@app.command()
def run(
    person: Annotated[Path, typer.Argument(help="photo of one standing person (jpg, png, webp)")],
    garment: Annotated[Path, typer.Argument(help="product photo of the garment (jpg, png, webp)")],
    bucket: BucketOpt = Path("dropfit-bucket"),
    job_id: Annotated[str | None, typer.Option("--job-id", help="default: derived from the inputs' bytes")] = None,
    job_spec: Annotated[Path | None, typer.Option("--job-spec", help="job.json: height, size chart, ...")] = None,
    log_level: LogLevel = "warning",
    log_format: LogFormat = "console",
) -> None:
    """Run one job to the end: put the inputs under incoming/, process, print where the results are.

    Exit codes: 0 succeeded, 1 failed (the reason is printed and in results/{job}/error.json),
    3 incomplete (a phase this build does not have yet, or the time limit ran out)."""
    settings = _settings(log_level, log_format)
    person_bytes, person_ext = _read_image(person, "PERSON")
    garment_bytes, garment_ext = _read_image(garment, "GARMENT")
    spec_bytes = _read_file(job_spec, "--job-spec", "a job.json file") if job_spec else None
    job = job_id or _default_job_id(person_bytes, garment_bytes, spec_bytes or b"")
    try:
        layout.check_id(job)
    except layout.InvalidKey as exc:
        raise typer.BadParameter(str(exc), param_hint="--job-id") from exc
    progress = ProgressPrinter(console)
    local = _open_bucket(bucket, settings, "--bucket", on_outcome=progress, on_start=progress.started)
    raise typer.Exit(run_job(local, job, (person_bytes, person_ext), (garment_bytes, garment_ext), spec_bytes,
                             timeout_s=settings.job_timeout_s, progress=progress))


def run_job(local: LocalApp, job: str, person: tuple[bytes, str], garment: tuple[bytes, str], spec: bytes | None,
            *, timeout_s: float, progress: ProgressPrinter | None = None) -> int:
    """Put the job's inputs, process until it is terminal, print the result at once; then stop (tasks of other
    jobs in hand get a short grace, deliveries a brief wait: what is left goes on from the outbox)."""
    store = local.store
    console.print(f"dropfit: job [bold]{job}[/] in bucket {store.root}")
    local.runtime.start()
    try:
        with progress or nullcontext():
            clear_other_formats(local.store, job, {"person": person[1], "garment": garment[1]})
            if spec is not None:
                store.put(layout.incoming_spec_key(job), spec, content_type="application/json")
            store.put(layout.incoming_image_key(job, "person", person[1]), person[0])
            store.put(layout.incoming_image_key(job, "garment", garment[1]), garment[0])
            started = time.monotonic()
            local.runtime.run_until(lambda: _terminal(store, job), timeout=timeout_s)
        code = _report_job(store, job, local.registry.missing(), time.monotonic() - started)
    finally:
        shut_down(console, local.runtime, grace_s=STOP_GRACE_S, deliveries_s=DELIVERY_WAIT_S, announce=False)
    return code


def _terminal(store: ObjectStore, job: str) -> bool:
    plan = load_plan(store, job)
    return plan is not None and job_status(store, plan) != "running"


def _report_job(store: FolderStore, job: str, missing: dict[str, str], elapsed: float) -> int:
    plan = load_plan(store, job)
    state = job_status(store, plan) if plan is not None else "running"
    manifest = result_manifest(store, job)
    if state == "succeeded" and manifest is not None:
        page = store.root / layout.result_page_key(job)
        where = page.resolve().as_uri() if page.is_file() else store.root / layout.result_prefix(job)
        console.print(f"[green]succeeded[/] in {elapsed:.1f} s: {where}", highlight=False, soft_wrap=True)
        _print_result(store, job, manifest)
        return 0
    error = job_error(store, job)
    if state == "failed" and error is not None:
        console.print(f"[red]failed[/] in {error.phase}: {error.reason}\n  what to do: {error.user_action}\n"
                      f"  details: {store.root / layout.result_error_key(job)}", highlight=False)
        return EXIT_FAILED
    if missing:
        if plan is not None:
            _print_finished_phases(store, plan)
        console.print("[yellow]incomplete[/]: the job is planned and waiting for phases this build does not "
                      "have yet:", highlight=False)
        for phase_name, reason in missing.items():
            console.print(f"  - {phase_name}: {reason}", highlight=False)
        console.print("  Nothing is lost: once they exist, `dropfit sweep` finishes the job.")
    else:
        console.print(f"[yellow]incomplete[/]: job {job} did not finish in time; `dropfit status` shows where it is")
    return EXIT_INCOMPLETE


def _print_result(store: FolderStore, job: str, manifest: ResultManifest) -> None:
    """The files a person opens first, and the fit verdict in a line."""
    folder = store.root / layout.result_prefix(job)
    names = {f.name for f in manifest.files}
    for name in ("photo.png", "model.glb", "contact_sheet.jpg", "angles/000.png"):
        if name in names:
            console.print(f"  {folder / name}", highlight=False)
    fitting = manifest.phases["fitting"].data if "fitting" in manifest.phases else {}
    if fitting:
        cues = ", ".join(fitting.get("prompt_cues", []))
        console.print(f"  fit: size {fitting.get('size_evaluated')} is {fitting.get('overall_fit')} "
                      f"(recommended: {fitting.get('recommended_size')}); {cues}", highlight=False)
        front = fitting.get("identity_distance", {}).get("000")
        console.print(f"  identity at 000: {'not checked' if front is None else f'distance {front:.2f}'}; "
                      f"flags: {', '.join(fitting.get('quality_flags', [])) or 'none'}", highlight=False)


def _print_finished_phases(store: FolderStore, plan: JobPlan) -> None:
    """Where each finished phase's outputs are, pointing at its overlay (what the phase saw)."""
    for name, run in plan.runs.items():
        manifest = run_manifest(store, name, run.key)
        if manifest is None:
            continue
        names = {f.name for f in manifest.files}
        look = "overlay.png" if "overlay.png" in names else ", ".join(sorted(names)[:3])
        folder = store.root / layout.run_prefix(name, manifest.run_key)
        console.print(f"  {name} done: {folder / look}", highlight=False)


@app.command()
def demo(
    bucket: BucketOpt = Path("dropfit-demo"),
    log_level: LogLevel = "warning",
    log_format: LogFormat = "console",
) -> None:
    """The main job on a built-in sample (a person rendered from the body model, a drawn T-shirt): no files,
    no network, no account. Exit codes as `run`: 0 succeeded, 1 failed, 3 incomplete."""
    settings = _settings(log_level, log_format)
    progress = ProgressPrinter(console)
    local = _open_bucket(bucket, settings, "--bucket", on_outcome=progress, on_start=progress.started)
    person = sample_person(settings.models().cache)
    code = run_job(local, "demo", (person, "png"), (sample_garment(), "png"), None, timeout_s=settings.job_timeout_s,
                   progress=progress)
    if code == EXIT_INCOMPLETE:  # every phase exists: a phase whose backends cannot load here, or a slow machine
        console.print("The demo did not finish: the lines above say which phase stopped and why.")
    raise typer.Exit(code)


@app.command()
def watch(
    bucket: Annotated[Path, typer.Argument(help="the bucket folder to watch")],
    log_level: LogLevel = "info",
    log_format: LogFormat = "console",
) -> None:
    """Long-running: pick up files dropped into BUCKET/incoming/ and BUCKET/catalog/ (Ctrl-C stops: no new
    work at once, running tasks get a few seconds, then their claims go to the next worker)."""
    settings = _settings(log_level, log_format)
    local = _open_bucket(bucket, settings, "BUCKET", on_outcome=ProgressPrinter(console))
    watch_bucket(local, settings.sweep_interval_s)


def watch_bucket(local: LocalApp, sweep_interval_s: float, *, grace_s: float = STOP_GRACE_S) -> None:
    """Until Ctrl-C: the watcher's events, a sweep every `sweep_interval_s` (deliveries due are retried more
    often, on their backoff's schedule); then a prompt stop."""
    console.print(f"watching {local.store.root} (incoming/, catalog/); sweeping every {sweep_interval_s:.0f} s; "
                  "Ctrl-C to stop")
    watcher = FolderWatcher(local.store, local.runtime.submit_event)
    local.runtime.start()
    try:
        watcher.start()
        local.runtime.sweep()
        tick = min(sweep_interval_s, REDELIVER_TICK_S)
        next_sweep = time.monotonic() + sweep_interval_s
        while True:
            time.sleep(tick)
            if time.monotonic() >= next_sweep:
                local.runtime.sweep()
                next_sweep = time.monotonic() + sweep_interval_s
            else:
                local.runtime.redeliver()
    except KeyboardInterrupt:
        console.print("stopping: taking no new work")
    finally:
        arm_stop_deadline(grace_s + DELIVERY_WAIT_S + STOP_SLACK_S)
        watcher.stop()
        shut_down(console, local.runtime, grace_s=grace_s, deliveries_s=DELIVERY_WAIT_S, announce=True)


@app.command()
def serve(
    bucket: BucketOpt = Path("dropfit-bucket"),
    host: Annotated[str, typer.Option("--host", help="address to listen on; without an API key only loopback")] =
    "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port to listen on")] = 8000,
    work: Annotated[bool, typer.Option("--work/--no-work", help="also run the jobs here (as `dropfit watch` "
                                       "does); --no-work when a `dropfit watch` runs them")] = True,
    log_level: LogLevel = "info",
    log_format: LogFormat = "console",
) -> None:
    """Serve the jobs HTTP API on BUCKET (docs/api.md; OpenAPI at /docs), and run its jobs. Without an API key
    configured (DROPFIT_API_KEY_HASHES, `dropfit api-key`) it listens on loopback only."""
    from functions.api import ApiConfig, create_api
    from functions.api.auth import check_bind
    from functions.api.server import ApiServer

    settings = _settings(log_level, log_format)
    try:
        said = check_bind(host, settings.api_key_hashes)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--host") from exc
    local = _open_bucket(bucket, settings, "--bucket", on_outcome=ProgressPrinter(console))
    if work:
        local.runtime.start()  # first: it imports torch (a second or two), before anyone is told to call
    api = create_api(ApiConfig.from_settings(local.store, local.registry, settings))
    server = ApiServer(api, host, port)
    try:
        server.start()
    except RuntimeError as exc:
        raise typer.BadParameter(str(exc), param_hint="--port") from exc
    console.print(f"dropfit API on {server.url} (docs: {server.url}/docs) for {local.store.root}; {said}",
                  highlight=False)
    try:
        if work:
            watch_bucket(local, settings.sweep_interval_s)
        else:
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        server.stop()


@app.command(name="api-key")
def api_key() -> None:
    """Make an API key for `dropfit serve` and the Modal endpoint: give the key to the client, put its sha256
    into DROPFIT_API_KEY_HASHES (the server keeps only that)."""
    from functions.api.auth import new_key

    key, digest = new_key()
    typer.echo(f"key (give it to the client; shown once): {key}")  # plain lines: copied, never wrapped
    typer.echo(f"sha256 (for the server): {digest}")
    typer.echo(f"  export DROPFIT_API_KEY_HASHES='[\"{digest}\"]'")


@app.command()
def sweep(
    bucket: Annotated[Path, typer.Argument(help="the bucket folder")],
    log_level: LogLevel = "info",
    log_format: LogFormat = "console",
) -> None:
    """Re-derive pending work from storage and run it until nothing more can be done (recovers lost events
    and the work of dead workers, once their lease has run out), and retry the subscriber deliveries due."""
    settings = _settings(log_level, log_format)
    progress = ProgressPrinter(console)
    local = _open_bucket(bucket, settings, "BUCKET", on_outcome=progress, on_start=progress.started)
    local.runtime.start()
    try:
        with progress:
            local.runtime.run_until(lambda: False, timeout=settings.job_timeout_s)
        console.print(f"sweep finished: {len(local.runtime.outcomes)} tasks looked at")
    finally:
        shut_down(console, local.runtime, grace_s=STOP_GRACE_S, deliveries_s=SWEEP_DELIVERY_WAIT_S, announce=False)


@app.command()
def status(
    bucket: Annotated[Path, typer.Argument(help="the bucket folder")],
    job_id: Annotated[str | None, typer.Argument(help="one job in detail")] = None,
) -> None:
    """Jobs and their phases, as storage says (done, running, pending, failed)."""
    local = _open_bucket(bucket, Settings(), "BUCKET")
    if job_id is None:
        console.print(status_view.jobs_table(local.store, local.registry))
    else:
        console.print(status_view.job_detail(local.store, local.registry, job_id))


cloud_cli.register(app)  # dropfit infra plan|apply|destroy|policy, dropfit worker (the cloud path)
app.add_typer(models_app, name="models")  # dropfit models prepare
app.add_typer(weights_app, name="weights")  # dropfit weights pull|verify|upload|list


def main() -> None:
    try:
        app()
        code = 0
    except SystemExit as done:  # typer ends every command this way
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if not isinstance(done.code, int | None):
            print(done.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    exit_now(code)


if __name__ == "__main__":
    main()
