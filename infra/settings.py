"""The one settings object, built at the edge (the CLI, a Modal function); nothing reads os.environ at import."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.backends.config import ModelConfig
from pipeline.backends.table import BACKENDS, Profile
from pipeline.cost import MODAL_GPU_PER_S, PRICES_DATE, Prices

WEEK_S = 7 * 24 * 3600  # the longest a SigV4 presigned URL may live


class Settings(BaseSettings):
    """Every field can be set with an environment variable `DROPFIT_<NAME>` (e.g. DROPFIT_WORKERS=4).
    Tuples are JSON: DROPFIT_WEBHOOK_URLS='["https://example.com/hooks/dropfit"]'."""

    model_config = SettingsConfigDict(env_prefix="DROPFIT_", extra="ignore", frozen=True)

    workers: int = Field(default=2, ge=1, le=64, description="tasks run at once by the local runtime")
    preload: bool = Field(default=True, description="load every phase's models in a background thread as the local "
                          "runtime starts, while intake checks the upload (0: on each phase's first call)")
    lease_s: float = Field(default=60.0, gt=0.5, description="a claim's lease; renewed every lease/3")
    max_attempts: int = Field(default=3, ge=1, le=20, description="attempts of a step before giving up")
    retry_base_s: float = Field(default=0.5, ge=0, description="first retry delay; doubles, with jitter")
    sweep_interval_s: float = Field(default=30.0, gt=0, description="how often `watch` re-reads storage")
    job_timeout_s: float = Field(default=3600.0, gt=0, description="how long `run` waits for a job")
    waiting_after_s: float = Field(
        default=600.0, gt=0, description="`dropfit status` reports a job that has had one photo (a batch that has "
        "had photos but no batch.json) for longer than this as waiting for the rest")
    s3_endpoint_url: str | None = Field(default=None, description="S3 API endpoint (moto, MinIO); None = AWS")
    aws_region: str | None = Field(default=None, description="the bucket's region; None = the AWS default chain")
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # ---- the cloud path (docs/cloud.md) ------------------------------------------------------------
    bucket: str | None = Field(default=None, description="the S3 bucket the Modal functions serve")
    queue_url: str | None = Field(default=None, description="the SQS queue of the bucket's events (Modal poller)")
    endpoint_token: SecretStr | None = Field(
        default=None, description="shared secret EventBridge sends in `x-dropfit-token`; unset = endpoint refuses")
    presign_expiry_s: int = Field(default=WEEK_S, ge=60, le=WEEK_S, description="lifetime of result links")

    # ---- the jobs HTTP API (functions/api, docs/api.md) ---------------------------------------------
    api_key_hashes: tuple[str, ...] = Field(
        default=(), description="sha256 hex digests of the API's bearer keys (`dropfit api-key` makes one); none: "
        'the local server binds to loopback only. DROPFIT_API_KEY_HASHES=\'["9f86d0..."]\'')
    api_link_secret: SecretStr | None = Field(
        default=None, description="signs result links of a folder bucket; None: derived from the key digests")
    api_upload_expiry_s: int = Field(default=3600, ge=60, le=WEEK_S, description="lifetime of upload links (S3)")
    api_poll_s: float = Field(default=0.5, gt=0, le=30, description="how often an event stream re-reads storage")

    # ---- subscribers -------------------------------------------------------------------------------
    webhook_urls: tuple[str, ...] = Field(default=(), description="the operator's webhooks, told of every job")
    webhook_secret: SecretStr | None = Field(default=None, description="Standard Webhooks signing secret, whsec_...")
    webhook_secret_previous: SecretStr | None = Field(
        default=None, description="during a rotation: the old secret; both signatures are sent")
    webhook_allow_private: bool = Field(
        default=False, description="let per-job webhooks reach loopback/private addresses and plain http (dev only)")
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60, description="one webhook request's timeout")
    webhook_max_attempts: int = Field(default=10, ge=1, le=50, description="attempts before a delivery fails")
    webhook_retry_base_s: float = Field(default=5.0, ge=0, description="first retry delay; doubles, with jitter")
    webhook_retry_cap_s: float = Field(default=3600.0, ge=0, description="longest delay between two attempts")
    webhook_inline_budget_s: float = Field(
        default=20.0, ge=0, description="how long publishing retries in place before the sweeper takes over")
    notify: tuple[str, ...] = Field(default=(), description='more subscribers told of every job, as "kind:target": '
                                    'DROPFIT_NOTIFY=\'["sqs:https://sqs...", "sns:arn:aws:sns:..."]\' (kinds: '
                                    'infra/notifications.py CHANNEL_KINDS)')
    notify_sns_topic_arn: str | None = Field(default=None, description="an SNS topic told of every job")
    notify_sqs_queue_url: str | None = Field(default=None, description="an SQS queue told of every job")
    notify_eventbridge_bus: str | None = Field(default=None, description="an EventBridge bus told of every job")

    # ---- the model backends (pipeline.backends.config.ModelConfig is built from these) ----------------
    profile: Profile = Field(default="cpu", description="which backends run the phases: cpu, gpu or "
                             "commercial-safe (only backends whose licence allows commercial use; docs/gpu.md)")
    backends: dict[str, str] = Field(default_factory=dict, description="protocol -> backend key, overriding the "
                                     'profile: DROPFIT_BACKENDS=\'{"FaceEmbedder": "insightface"}\'')
    model_cache_dir: Path | None = Field(default=None, description="one-time model builds; None = <repo>/.cache")
    weights_dir: Path | None = Field(default=None, description="the GPU models' weights (`dropfit weights pull`); "
                                     "None = <model cache>/weights, on Modal the mounted volume's weights/")
    tryon_steps: int = Field(default=28, ge=1, le=100, description="the try-on painter's denoising steps (gpu)")
    tryon_max_side: int = Field(default=1024, ge=32, le=2048, description="longest side the try-on paints at (gpu)")
    refine_steps: int = Field(default=30, ge=1, le=100, description="the view refiner's schedule steps (gpu)")
    refine_max_side: int = Field(default=1024, ge=32, le=2048,
                                 description="longest side the full-figure refiner works at (gpu)")
    mesh_steps: int = Field(default=50, ge=1, le=200, description="the multi-view 3D model's denoising steps (gpu)")
    mesh_resolution: int = Field(default=256, ge=16, le=512,
                                 description="the multi-view 3D model's marching-cubes grid, cells a side (gpu)")
    cpu_core_price_per_s: float | None = Field(
        default=None, ge=0, description="US$ per CPU core-second for the cost in manifests; None (local) = CPU time "
        "costs 0. Modal containers set Modal's price")
    gpu_prices_per_s: dict[str, float] = Field(
        default_factory=lambda: dict(MODAL_GPU_PER_S), description="US$ per GPU-second by GPU model (JSON), "
        f"default Modal's list prices of {PRICES_DATE}")
    gemini_api_key: SecretStr | None = Field(default=None, description="set: Gemini reads size charts and fabric")
    gemini_model: str = "gemini-2.5-flash"
    gemini_base_url: str | None = Field(default=None, description="a proxy or test server; None = Google's API")

    @field_validator("notify")
    @classmethod
    def _kind_and_target(cls, entries: tuple[str, ...]) -> tuple[str, ...]:
        for entry in entries:
            kind, colon, target = entry.partition(":")
            if not (kind and colon and target):
                raise ValueError(f'a DROPFIT_NOTIFY entry is "kind:target" (e.g. "sqs:https://..."), not {entry!r}')
        return entries

    @field_validator("api_key_hashes")
    @classmethod
    def _sha256_hex(cls, digests: tuple[str, ...]) -> tuple[str, ...]:
        for digest in digests:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError("each DROPFIT_API_KEY_HASHES entry is a key's sha256 as 64 lower-case hex "
                                 "characters (`dropfit api-key` prints one), never the key itself")
        return digests

    @model_validator(mode="after")
    def _plan_is_allowed(self) -> Settings:
        """Refuse to start with a profile and overrides that cannot run (e.g. commercial-safe with a
        non-commercial backend), saying what to change."""
        BACKENDS.plan(self.profile, self.backends)
        return self

    def models(self) -> ModelConfig:
        """The backends' config, from these settings (the one place the two meet)."""
        return ModelConfig(profile=self.profile, backends=self.backends, cache_dir=self.model_cache_dir,
                           weights_dir=self.weights_dir, tryon_steps=self.tryon_steps,
                           tryon_max_side=self.tryon_max_side, refine_steps=self.refine_steps,
                           refine_max_side=self.refine_max_side, mesh_steps=self.mesh_steps,
                           mesh_resolution=self.mesh_resolution, gemini_api_key=self.gemini_api_key,
                           gemini_model=self.gemini_model, gemini_base_url=self.gemini_base_url)

    def prices(self) -> Prices:
        """The price table the manifests' cost is figured at."""
        return Prices(gpu_per_s=self.gpu_prices_per_s, cpu_core_per_s=self.cpu_core_price_per_s)
