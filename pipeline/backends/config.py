"""What the model backends are built from: a small frozen config, filled at the edge from Settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from pipeline.backends.table import BACKENDS, Profile


def default_cache_dir() -> Path:
    """`<repo>/.cache`: where one-time model builds (anny) live, never the home directory by surprise."""
    return Path(__file__).resolve().parents[2] / ".cache"


class ModelConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: Profile = "cpu"  # which backends serve each protocol (pipeline.backends.table: BACKENDS.plan)
    backends: dict[str, str] = Field(default_factory=dict)  # protocol -> backend key, overriding the profile
    cache_dir: Path | None = None  # None = default_cache_dir()
    weights_dir: Path | None = None  # the GPU models' weights (`dropfit weights pull`); None = <cache>/weights
    tryon_steps: int = Field(default=28, ge=1, le=100)  # the try-on painter's denoising steps
    tryon_max_side: int = Field(default=1024, ge=32, le=2048)  # each half of the try-on diptych, at most, pixels
    refine_steps: int = Field(default=30, ge=1, le=100)  # the view refiner's schedule (img2img runs ~strength x it)
    refine_max_side: int = Field(default=1024, ge=32, le=2048)  # the longer side the view refiner works at, pixels
    mesh_steps: int = Field(default=50, ge=1, le=200)  # the multi-view shape model's denoising steps
    mesh_resolution: int = Field(default=256, ge=16, le=512)  # its marching-cubes grid, cells a side
    gemini_api_key: SecretStr | None = None  # set -> the Gemini vision LLM reads size charts and fabric
    gemini_model: str = "gemini-2.5-flash"
    gemini_base_url: str | None = None  # a test server or a proxy; None = Google's endpoint

    @model_validator(mode="after")
    def _plan_is_allowed(self) -> ModelConfig:
        BACKENDS.plan(self.profile, self.backends)  # refuses an unknown or licence-forbidden combination
        return self

    @property
    def cache(self) -> Path:
        return self.cache_dir or default_cache_dir()

    @property
    def weights(self) -> Path:
        """Where the GPU adapters load from: on Modal the volume is the cache, so this is <volume>/weights."""
        return self.weights_dir or self.cache / "weights"

    def configured(self, field: str | None) -> bool:
        """Is this field (a backend's `requires`, e.g. an API key) set to something usable?"""
        if field is None:
            return True
        value = getattr(self, field)
        return bool(value.get_secret_value() if isinstance(value, SecretStr) else value)
