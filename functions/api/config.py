"""What the API serves and how: the store, the phases (to say which exist), the keys and the limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request

from functions.api.links import link_secret, signed_folder
from functions.api.views import Linker
from infra.s3_store import S3Store
from infra.settings import WEEK_S, Settings
from pipeline.manifests import FileEntry
from pipeline.phase_api import PhaseRegistry
from pipeline.storage import ObjectStore


@dataclass(frozen=True)
class ApiConfig:
    store: ObjectStore
    registry: PhaseRegistry
    key_hashes: tuple[str, ...] = ()
    upload_expiry_s: int = 3600
    presign_expiry_s: int = WEEK_S
    poll_s: float = 0.5
    stream_max_s: float | None = None  # an event stream ends after this long (the client resumes); None: never
    profile: str = "cpu"
    backends: dict[str, str] = field(default_factory=dict)
    model_cache: Path | None = None
    link_secret: bytes | None = None  # signs a folder bucket's result links (functions/api/links.py)

    @classmethod
    def from_settings(cls, store: ObjectStore, registry: PhaseRegistry, settings: Settings) -> ApiConfig:
        return cls(store, registry, key_hashes=settings.api_key_hashes, upload_expiry_s=settings.api_upload_expiry_s,
                   presign_expiry_s=settings.presign_expiry_s, poll_s=settings.api_poll_s, profile=settings.profile,
                   backends=dict(settings.backends), model_cache=settings.models().cache,
                   link_secret=link_secret(settings.api_link_secret.get_secret_value() if settings.api_link_secret
                                           else None, settings.api_key_hashes))

    @property
    def presigns(self) -> bool:
        """S3 hands out links straight to the bucket; a folder bucket is served by the API itself."""
        return isinstance(self.store, S3Store)

    def linker(self, request: Request) -> Linker:
        """Result links: presigned GETs on S3; on a folder bucket this server's signed results folder (a browser
        opens it without a key), or its plain results path when the server is open (no key configured)."""
        store = self.store
        if isinstance(store, S3Store):
            expires = self.presign_expiry_s
            return lambda job_id, entry: store.presign_get(entry.key, expires)
        base = str(request.base_url).rstrip("/")
        secret, expires_s = self.link_secret, self.presign_expiry_s

        def served(job_id: str, entry: FileEntry) -> str:
            if secret is None:
                return f"{base}/v1/jobs/{job_id}/results/{entry.name}"
            return f"{base}{signed_folder(secret, job_id, expires_s)}{entry.name}"

        return served
