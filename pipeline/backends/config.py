"""What the model backends are built from: a small frozen config, filled at the edge from Settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr


def default_cache_dir() -> Path:
    """`<repo>/.cache`: where one-time model builds (anny) live, never the home directory by surprise."""
    return Path(__file__).resolve().parents[2] / ".cache"


class ModelConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: str = "cpu"
    cache_dir: Path | None = None  # None = default_cache_dir()
    gemini_api_key: SecretStr | None = None  # set -> the Gemini vision LLM reads size charts and fabric
    gemini_model: str = "gemini-2.5-flash"
    gemini_base_url: str | None = None  # a test server or a proxy; None = Google's endpoint

    @property
    def cache(self) -> Path:
        return self.cache_dir or default_cache_dir()
