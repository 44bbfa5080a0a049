"""The one settings object, built at the edge (the CLI, a Modal function); nothing reads os.environ at import."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every field can be set with an environment variable `DROPFIT_<NAME>` (e.g. DROPFIT_WORKERS=4)."""

    model_config = SettingsConfigDict(env_prefix="DROPFIT_", extra="ignore", frozen=True)

    workers: int = Field(default=2, ge=1, le=64, description="tasks run at once by the local runtime")
    lease_s: float = Field(default=60.0, gt=0.5, description="a claim's lease; renewed every lease/3")
    max_attempts: int = Field(default=3, ge=1, le=20, description="attempts of a step before giving up")
    retry_base_s: float = Field(default=0.5, ge=0, description="first retry delay; doubles, with jitter")
    sweep_interval_s: float = Field(default=30.0, gt=0, description="how often `watch` re-reads storage")
    job_timeout_s: float = Field(default=3600.0, gt=0, description="how long `run` waits for a job")
    s3_endpoint_url: str | None = Field(default=None, description="S3 API endpoint (moto, MinIO); None = AWS")
    aws_region: str | None = Field(default=None, description="the bucket's region; None = the AWS default chain")
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
