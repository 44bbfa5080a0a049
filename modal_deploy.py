"""The Modal app: `modal deploy modal_deploy.py` is the whole deploy (set-up in order: docs/cloud.md).

    S3 -> SQS (+DLQ) -> poll_queue (every minute, long-polls)  \\
                                                               -> route -> SpawnDispatcher -> .spawn():
    S3 -> EventBridge -> API destination -> eventbridge (web)  /     AvatarPhase, WardrobePhase,
                                                                      FittingPhase, Viewer3dPhase (on GPUs
                                                                      under DROPFIT_PROFILE=gpu),
                                                                      run_task (intake, publish, ...)

Every body is `functions/cloud.py`: the very handlers the local runtime runs (skip if done -> claim ->
run -> done marker) against the S3 bucket. A phase's output write is an S3 event that starts the next
phase. A phase class loads its models once per container (`@modal.enter`), from the weights volume
mounted as the model cache. `sweep` (every 10 minutes) re-derives what is due from storage and retries
subscriber deliveries. Importing this file needs no credentials and no network; tests call `.local()`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import modal

APP_NAME = "dropfit"
AWS_SECRET = "dropfit-aws"  # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, DROPFIT_BUCKET, ...
API_KEYS_SECRET = "dropfit-api-keys"  # optional model API keys (DROPFIT_GEMINI_API_KEY=...); may hold a placeholder
WEIGHTS_VOLUME = "dropfit-models"
MODELS_DIR = "/models"
GPU_FALLBACKS = ["H100", "A100-80GB", "L40S"]  # the first one free is taken
POLL_SECONDS = 50  # each scheduled poll long-polls this long: the queue is read almost continuously
ENDPOINT_WARM = 1  # keep the EventBridge endpoint warm (its caller gives up after 5 s); 0 for the SQS route only

BASE_PACKAGES = [  # the spine, pinned as tested (pyproject.toml holds the ranges)
    "pydantic==2.14.3", "pydantic-settings==2.16.3", "structlog==26.1.0", "boto3==1.44.5", "watchdog==7.1.0",
    "typer==0.29.2", "rich==15.0.0", "pillow==13.0.0", "numpy==1.26.4", "standardwebhooks==1.1.0",
]
MODEL_PACKAGES = [  # the model stack (docs/cpu-stack.md); the model phases' owners extend the GPU list
    "mediapipe==0.10.21", "dlib-bin==20.0.1.post1", "face-recognition-models==0.3.0", "anny==0.6.2", "trimesh==5.2.0",
]
GPU_PACKAGES = [  # the GPU adapters (docs/gpu.md); pyproject's `gpu` extra holds the same, less ultralytics
    "diffusers==0.42.1", "transformers==5.23.0", "accelerate==1.15.0", "peft==0.21.2", "insightface==2.1",
    "onnxruntime-gpu==1.31.1", "ultralytics==8.4.190", "torchvision==0.28.0", "opencv-python==4.11.0.86",
    "huggingface-hub==2.4.0", "einops==0.8.2", "pymeshlab==2025.7.post1", "scikit-image==0.26.0", "xatlas==0.0.11",
]
# hy3dgen (Hunyuan3D-2mv) without its declared dependencies: those are its demo app's (gradio, fastapi, rembg with
# a third opencv); what its shape pipeline imports is in GPU_PACKAGES.
HY3DGEN = "hy3dgen==2.0.2"
SOURCES = ("functions", "pipeline", "events", "infra")
# The deployment's backends: `DROPFIT_PROFILE=gpu modal deploy modal_deploy.py` puts the avatar on a GPU too and
# tells every container (Settings reads the same variable). Read here, at deploy time, on purpose.
PROFILE = os.environ.get("DROPFIT_PROFILE", "cpu")
ENV = {"DROPFIT_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1", "DROPFIT_PROFILE": PROFILE}

app = modal.App(APP_NAME)

cpu_image = (modal.Image.debian_slim(python_version="3.11").pip_install(*BASE_PACKAGES).env(ENV)
             .add_local_python_source(*SOURCES))
cpu_model_image = (
    modal.Image.debian_slim(python_version="3.11").apt_install("libgl1", "libglib2.0-0")
    .pip_install("torch==2.13.0", index_url="https://download.pytorch.org/whl/cpu")
    .pip_install(*BASE_PACKAGES, *MODEL_PACKAGES).env(ENV).add_local_python_source(*SOURCES))
gpu_image = (
    modal.Image.from_registry("nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04", add_python="3.11")
    .apt_install("libgl1", "libglib2.0-0").pip_install("torch==2.13.0", *BASE_PACKAGES, *MODEL_PACKAGES, *GPU_PACKAGES)
    .pip_install(HY3DGEN, extra_options="--no-deps").env(ENV).add_local_python_source(*SOURCES))

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
    from pipeline.phases import PHASE_BY_NAME

    store = s3_store(required(settings.bucket, "DROPFIT_BUCKET"), settings)
    spawners = {name: (lambda step, subject, bucket, cls=cls: cls().run.spawn(subject, bucket))
                for name, cls in PHASE_CLASSES.items()}
    product = phase_registry(settings, None)  # cheap: backends are built lazily; used only to ask what exists
    return SpawnDispatcher(store, spawners, default=lambda step, subject, bucket: run_task.spawn(step, subject, bucket),
                           available=lambda step: step not in PHASE_BY_NAME or product.available(step))


@app.function(image=cpu_image, secrets=secrets, retries=task_retries, timeout=600, max_containers=50)
def run_task(step: str, subject: str, bucket: str) -> dict[str, Any]:
    """One orchestration task (intake, batch, publish, fail, report) or any step, against the S3 bucket."""
    from functions.cloud import execute_task

    return execute_task(step, subject, bucket, _settings())


class _Phase:
    """One phase's function: models load once per container, then each call runs one content-keyed run."""

    phase: ClassVar[str]

    @modal.enter()
    def load(self) -> None:
        from functions.cloud import PhaseRunner, phase_registry

        cache = None if modal.is_local() else Path(MODELS_DIR)  # .local() in tests keeps the default cache
        settings = _settings()
        self.runner = PhaseRunner(settings, phase_registry(settings, cache))
        self.runner.warm_up()

    @modal.method()
    def run(self, run_key: str, bucket: str) -> dict[str, Any]:
        return self.runner.run(self.phase, run_key, bucket)


cpu_phase = {"image": cpu_model_image, "secrets": secrets, "volumes": {MODELS_DIR: weights.read_only()},
             "cpu": 2.0, "memory": 4096, "retries": task_retries, "timeout": 900, "max_containers": 20,
             "scaledown_window": 300}
gpu_phase = {**cpu_phase, "image": gpu_image, "gpu": GPU_FALLBACKS, "cpu": 4.0, "memory": 16384, "timeout": 1800,
             "max_containers": 10}


@app.cls(**(gpu_phase if PROFILE == "gpu" else cpu_phase))  # YOLO, SAM and InsightFace under the gpu profile
class AvatarPhase(_Phase):
    phase = "avatar"


@app.cls(**cpu_phase)
class WardrobePhase(_Phase):
    phase = "wardrobe"


# The model phases take a GPU only where the deployment's profile runs GPU models (try-on, multi-view 3D); under
# cpu and commercial-safe their work (the dressing, the torch rasterizer, the bake) runs on CPU containers.
@app.cls(**(gpu_phase if PROFILE == "gpu" else cpu_phase))
class FittingPhase(_Phase):
    phase = "fitting"


@app.cls(**(gpu_phase if PROFILE == "gpu" else cpu_phase))
class Viewer3dPhase(_Phase):
    phase = "viewer3d"


PHASE_CLASSES = {"avatar": AvatarPhase, "wardrobe": WardrobePhase, "fitting": FittingPhase, "viewer3d": Viewer3dPhase}


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

    phase_registry("cpu", Path(MODELS_DIR)).warm_up()
    weights.commit()
    return f"model cache ready in volume {WEIGHTS_VOLUME}"
