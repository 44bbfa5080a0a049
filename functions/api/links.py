"""Result links on a folder bucket that a browser can open: the signature sits in the path, not a header.

`/v1/results/{job_id}/{expires}-{signature}/{name}`: an HMAC of the job and the expiry time, so the result
page's relative links (angles/000.png, model.glb) resolve inside the same signed folder. The secret is
`DROPFIT_API_LINK_SECRET`, or derived from the configured key digests (a key holder may read any job anyway,
and no one else can make one). Like S3's presigned GETs, a link lives `DROPFIT_PRESIGN_EXPIRY_S`.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from functions.api.errors import ApiError

PREFIX = "/v1/results"


def link_secret(explicit: str | None, key_hashes: tuple[str, ...]) -> bytes | None:
    if explicit:
        return explicit.encode()
    if not key_hashes:
        return None  # an open server: its results need no signature
    return hashlib.sha256(("dropfit-result-links\x1f" + ",".join(sorted(key_hashes))).encode()).digest()


def _signature(secret: bytes, job_id: str, expires: int) -> str:
    return hmac.new(secret, f"{job_id}\x1f{expires}".encode(), hashlib.sha256).hexdigest()[:32]


def signed_folder(secret: bytes, job_id: str, expires_s: int, now: float | None = None) -> str:
    """The signed folder of a job's results, e.g. /v1/results/job-1/1767225600-3f2a.../"""
    expires = int((now or time.time()) + expires_s)
    return f"{PREFIX}/{job_id}/{expires}-{_signature(secret, job_id, expires)}/"


def check(secret: bytes | None, job_id: str, token: str, now: float | None = None) -> None:
    """403 unless `token` is this job's signature and has not expired."""
    expires, _, signature = token.partition("-")
    valid = secret is not None and expires.isdigit() and hmac.compare_digest(
        signature.encode(), _signature(secret, job_id, int(expires)).encode())
    if not valid:
        raise ApiError(403, "this result link is not valid", f"ask GET /v1/jobs/{job_id} for fresh links")
    if int(expires) < (now or time.time()):
        raise ApiError(403, "this result link has expired", f"ask GET /v1/jobs/{job_id} for fresh links")
