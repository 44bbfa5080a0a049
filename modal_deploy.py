"""The Modal app: `modal deploy modal_deploy.py` is the whole deploy (set-up in order: docs/cloud.md).

    S3 -> SQS (+DLQ) -> poll_queue (every minute, long-polls)  \\
                                                               -> route -> SpawnDispatcher -> .spawn():
    S3 -> EventBridge -> API destination -> eventbridge (web)  /     CpuPhase(phase=...) or
                                                                      GpuPhase(phase=...),
                                                                      run_task (intake, publish, ...)

Every body is `functions/cloud.py`: the very handlers the local runtime runs (skip if done -> claim ->
run -> done marker) against the S3 bucket. A phase's output write is an S3 event that starts the next
phase. Two classes serve every phase of the phase table, parametrised by the phase's name, so each phase
has its own containers: `GpuPhase` for the phases a backend of the deployment's profile runs on a GPU
(`pipeline.registry.phases_on_gpu`), `CpuPhase` for the rest. A container loads only its phase's models, once
(`@modal.enter`), from the weights volume mounted as the model cache. The images install what pyproject.toml
declares (its `cpu`, `gpu` and `cuda` extras). `sweep` (every 10 minutes) re-derives what is due from storage
and retries subscriber deliveries. Importing this file needs no credentials and no network; tests call
`.local()`.
"""

import dataclasses
import json
import os
import tomllib
from pathlib import Path
from typing import Any

import modal

from pipeline.backends.table import BACKENDS
from pipeline.cost import MODAL_CPU_CORE_PER_S
from pipeline.phases import PHASES
from pipeline.registry import phases_on_gpu

APP_NAME = "dropfit"
AWS_SECRET = "dropfit-aws"  # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, DROPFIT_BUCKET, ...
API_KEYS_SECRET = "dropfit-api-keys"  # optional model API keys (DROPFIT_GEMINI_API_KEY=...); may hold a placeholder
WEIGHTS_VOLUME = "dropfit-models"
MODELS_DIR = "/models"
GPU_FALLBACKS = ["H100", "H200", "A100-80GB"]  # the first one free is taken; all hold the try-on batch (80 GB+)
POLL_SECONDS = 50  # each scheduled poll long-polls this long: the queue is read almost continuously
STREAM_MAX_S = 120.0  # the API's event streams end within Modal's 150 s request limit; clients resume
ENDPOINT_WARM = 1  # keep the EventBridge endpoint warm (its caller gives up after 5 s); 0 for the SQS route only

PYPROJECT = Path(__file__).with_name("pyproject.toml")
SOURCES = ("functions", "pipeline", "events", "infra")
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"  # torch==2.13.0 from PyPI is the CUDA build
# The deployment's backends: `DROPFIT_PROFILE=gpu modal deploy modal_deploy.py` puts the phases whose planned
# backends need a GPU on GPU containers and tells every container (Settings reads the same variables). Read here,
# at deploy time, on purpose.
PROFILE = os.environ.get("DROPFIT_PROFILE", "cpu")
OVERRIDES: dict[str, str] = json.loads(os.environ.get("DROPFIT_BACKENDS") or "{}")
GPU_PHASES = phases_on_gpu(BACKENDS.plan(PROFILE, OVERRIDES))
ENV = {"DROPFIT_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1", "DROPFIT_PROFILE": PROFILE,
       "DROPFIT_BACKENDS": json.dumps(OVERRIDES), "HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "true",
       "YOLO_AUTOINSTALL": "false",
       # the cost in every manifest: Modal's CPU price (a deployment may set its own in the environment)
       "DROPFIT_CPU_CORE_PRICE_PER_S": os.environ.get("DROPFIT_CPU_CORE_PRICE_PER_S", str(MODAL_CPU_CORE_PER_S))}


def project_table(name: str) -> Any:
    """A table of pyproject.toml (`tool.dropfit`, `project.optional-dependencies`), read at deploy time."""
    node: Any = tomllib.loads(PYPROJECT.read_text())
    for part in name.split("."):
        node = node[part]
    return node


def pin(extra: str, package: str) -> str:
    """The requirement of `package` in a pyproject extra, as pinned there (e.g. onnxruntime-gpu==1.31.1)."""
    found = [r for r in project_table("project.optional-dependencies")[extra]
             if r.split("==")[0].split(">")[0].split("<")[0].strip() == package]
    if len(found) != 1:
        raise LookupError(f"pyproject.toml's {extra} extra has no single requirement for {package}")
    return str(found[0])


app = modal.App(APP_NAME)

cpu_image = (modal.Image.debian_slim(python_version="3.11").pip_install_from_pyproject(str(PYPROJECT)).env(ENV)
             .add_local_python_source(*SOURCES))
# the jobs HTTP API (functions/api): the base dependencies and the `api` extra (FastAPI, sse-starlette, ...)
api_image = (modal.Image.debian_slim(python_version="3.11")
             .pip_install_from_pyproject(str(PYPROJECT), optional_dependencies=["api"]).env(ENV)
             .add_local_python_source(*SOURCES))
# The result page's templates are not Python, which add_local_python_source leaves out: the publish and report
# steps (run_task) render them. Its 3D viewer, vendored by `make setup` (docs/result-page.md), is looked up in
# the default cache, /root/.cache beside the sources; without it the pages say the 3D view is missing.
cpu_image = cpu_image.add_local_dir(Path(__file__).with_name("pipeline") / "page" / "templates",
                                    "/root/pipeline/page/templates")
VIEWER_PACKAGE = Path(__file__).with_name(".cache") / "npm/node_modules/@google/model-viewer"
for viewer_file in ("package.json", "dist/model-viewer-umd.min.js"):
    if (VIEWER_PACKAGE / viewer_file).is_file():
        cpu_image = cpu_image.add_local_file(VIEWER_PACKAGE / viewer_file,
                                             f"/root/.cache/npm/node_modules/@google/model-viewer/{viewer_file}")
cpu_model_image = (
    modal.Image.debian_slim(python_version="3.11").apt_install("libgl1", "libglib2.0-0")
    .pip_install(pin("cpu", "torch"), index_url=CPU_TORCH_INDEX)
    .pip_install_from_pyproject(str(PYPROJECT), optional_dependencies=["cpu"]).env(ENV)
    .add_local_python_source(*SOURCES))
gpu_image = (
    modal.Image.from_registry("nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04", add_python="3.11")
    .apt_install("libgl1", "libglib2.0-0")
    .pip_install_from_pyproject(str(PYPROJECT), optional_dependencies=["cpu", "gpu", "cuda"])
    # insightface requires the CPU onnxruntime, which shares its module with onnxruntime-gpu: keep only the GPU one
    .run_commands("pip uninstall -y onnxruntime",
                  f"pip install --no-deps --force-reinstall '{pin('cuda', 'onnxruntime-gpu')}'")
    .pip_install(*project_table("tool.dropfit.install-without-deps"), extra_options="--no-deps")
    .env(ENV).add_local_python_source(*SOURCES))

weights = modal.Volume.from_name(WEIGHTS_VOLUME, create_if_missing=True)
secrets = [modal.Secret.from_name(AWS_SECRET), modal.Secret.from_name(API_KEYS_SECRET)]
task_retries = modal.Retries(max_retries=2, backoff_coefficient=2.0, initial_delay=5.0)  # crashes, preemption


def _settings() -> Any:
    from functions.logs import configure
    from infra.settings import Settings

    settings = Settings()
    configure(settings.log_format, settings.log_level)
    return settings


def _dispatcher(settings: Any) -> Any:
    """Modal mode of the dispatcher seam: each ready task spawns its step's function."""
    from functions.cloud import phase_registry, required, s3_store
    from functions.dispatch import SpawnDispatcher
    store = s3_store(required(settings.bucket, "DROPFIT_BUCKET"), settings)
    spawners = {name: (lambda step, subject, bucket, cls=cls: cls(phase=step).run.spawn(subject, bucket))
                for name, cls in PHASE_CLASSES.items()}
    product = phase_registry(settings, None)  # cheap: backends are built lazily; used only to ask what exists
    return SpawnDispatcher(store, spawners, default=lambda step, subject, bucket: run_task.spawn(step, subject, bucket),
                           available=lambda step: step not in PHASES or product.available(step))


@app.function(image=cpu_image, secrets=secrets, retries=task_retries, timeout=600, max_containers=50)
def run_task(step: str, subject: str, bucket: str) -> dict[str, Any]:
    """One orchestration task (intake, batch, publish, fail, report) or any step, against the S3 bucket."""
    from functions.cloud import execute_task

    return execute_task(step, subject, bucket, _settings())


class _Phase:  # no `from __future__ import annotations` here: Modal reads parameter types from annotations
    """One phase's containers (each subclass's `phase` parameter): its models load once per container, in
    `@modal.enter` (only that phase's), then each call runs one content-keyed run."""

    phase: str

    @modal.enter()
    def load(self) -> None:
        from functions.cloud import PhaseRunner, phase_registry

        cache = None if modal.is_local() else Path(MODELS_DIR)  # .local() in tests keeps the default cache
        settings = _settings()
        self.runner = PhaseRunner(settings, phase_registry(settings, cache))
        self.runner.warm_up(self.phase)

    @modal.method()
    def run(self, run_key: str, bucket: str) -> dict[str, Any]:
        return self.runner.run(self.phase, run_key, bucket)


cpu_phase: dict[str, Any] = {  # App.cls's keyword arguments
    "image": cpu_model_image, "secrets": secrets, "volumes": {MODELS_DIR: weights.with_mount_options(read_only=True)},
    "cpu": 2.0, "memory": 4096, "retries": task_retries, "timeout": 900, "max_containers": 20, "scaledown_window": 300}
# GPU memory: the try-on batch holds ~42 GB resident before activations, so the fallbacks are 80 GB cards.
gpu_phase: dict[str, Any] = {**cpu_phase, "image": gpu_image, "gpu": GPU_FALLBACKS, "cpu": 4.0, "memory": 65536,
                              "timeout": 1800, "max_containers": 10}


@app.cls(**cpu_phase)
class CpuPhase(_Phase):
    """The phases whose backends run on the CPU under the deployment's profile."""

    phase: str = modal.parameter()  # Modal reads a class's parameters from its own annotations


@app.cls(**gpu_phase)
class GpuPhase(_Phase):
    """The phases a backend of the deployment's profile runs on a GPU (try-on, multi-view 3D, YOLO, InsightFace)."""

    phase: str = modal.parameter()


PHASE_CLASSES = {p.name: GpuPhase if p.name in GPU_PHASES else CpuPhase for p in PHASES}


@app.function(image=cpu_image, secrets=secrets, schedule=modal.Period(minutes=1), timeout=POLL_SECONDS + 60,
              max_containers=1)
def poll_queue() -> dict[str, Any]:
    """S3 -> SQS route: long-poll the event queue, spawn what is ready, delete only what was dispatched."""
    from functions.cloud import poll_queue as poll

    settings = _settings()
    return poll(settings, _dispatcher(settings), seconds=POLL_SECONDS)


@app.function(image=cpu_image, secrets=secrets, retries=task_retries, timeout=120, max_containers=20)
def route_events(payload: str) -> dict[str, Any]:
    """The EventBridge route's hand-off: route the event against storage, spawn what is ready."""
    from functions.cloud import route_payload

    return route_payload(payload, _dispatcher(_settings()))


@app.function(image=cpu_image, secrets=secrets, min_containers=ENDPOINT_WARM, scaledown_window=900, timeout=30)
@modal.concurrent(max_inputs=50)
@modal.asgi_app(label="dropfit-events")
def eventbridge() -> Any:
    """S3 -> EventBridge route: the API destination's target. Token check, then `route_events.spawn`."""
    from functions.eventbridge_endpoint import asgi_app

    settings = _settings()
    token = settings.endpoint_token.get_secret_value() if settings.endpoint_token else None
    return asgi_app(token, accept=lambda payload: route_events.spawn(payload))


@app.function(image=api_image, secrets=secrets, scaledown_window=300, timeout=600)
@modal.concurrent(max_inputs=100)
@modal.asgi_app(label="dropfit-api")
def api() -> Any:
    """The jobs HTTP API (docs/api.md) on the S3 bucket: uploads and result links are presigned, so photos and
    results never pass through this container. Public on the internet, so it refuses to start without an API
    key (DROPFIT_API_KEY_HASHES in a secret)."""
    from functions.api import ApiConfig, create_api
    from functions.api.auth import check_bind
    from functions.cloud import phase_registry, required, s3_store

    settings = _settings()
    check_bind("0.0.0.0", settings.api_key_hashes)  # ValueError, saying what to set, when no key is configured
    store = s3_store(required(settings.bucket, "DROPFIT_BUCKET"), settings)
    config = ApiConfig.from_settings(store, phase_registry(settings, None), settings)
    # Modal's web endpoints cut a request at 150 s: an event stream ends before, and the client resumes with its
    # Last-Event-ID (a browser's EventSource by itself), missing nothing. The model cache is the phases' volume,
    # mounted where they run, not here.
    return create_api(dataclasses.replace(config, stream_max_s=STREAM_MAX_S, model_cache=None))


@app.function(image=cpu_image, secrets=secrets, schedule=modal.Period(minutes=10), timeout=600, max_containers=1)
def sweep() -> dict[str, Any]:
    """Everything storage says is due (lost events, dead containers), and subscriber retries now due."""
    from functions.cloud import sweep_bucket

    settings = _settings()
    return sweep_bucket(settings, _dispatcher(settings))


@app.function(image=cpu_model_image, secrets=secrets, volumes={MODELS_DIR: weights}, timeout=3600)
def prepare_models() -> str:
    """`modal run modal_deploy.py::prepare_models`: build every phase's weights into the volume, once."""
    from functions.cloud import phase_registry
    from infra.settings import Settings

    phase_registry(Settings(profile="cpu"), Path(MODELS_DIR)).warm_up()
    weights.commit()
    return f"model cache ready in volume {WEIGHTS_VOLUME}"
