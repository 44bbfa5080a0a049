"""Bearer API keys: kept as sha256 digests in settings (a leaked config holds no key), compared in constant
time. With no key configured the server is open, so it may bind to loopback only (`check_bind`)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

from fastapi import Request

from functions.api.errors import ApiError

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dropfit"'}


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh API key and the digest to put into DROPFIT_API_KEY_HASHES."""
    key = "dfk_" + secrets.token_urlsafe(32)
    return key, key_hash(key)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, hashes: tuple[str, ...]) -> str:
    """What the server says at start about who may call it; ValueError for an open server on a non-loopback
    address."""
    if hashes:
        return f"API keys required ({len(hashes)} configured): send 'Authorization: Bearer <key>'"
    if not is_loopback(host):
        raise ValueError(f"no API key is configured, so the API may only listen on loopback (127.0.0.1), not "
                         f"{host!r}: make a key with `dropfit api-key` and set DROPFIT_API_KEY_HASHES, or bind to "
                         "127.0.0.1")
    return "no API key configured: open to this machine only (bound to loopback)"


class KeyCheck:
    """The dependency every /v1 route has: 401 without a bearer key, 403 with one that is not configured."""

    def __init__(self, hashes: tuple[str, ...]) -> None:
        self.hashes = tuple(h.encode() for h in hashes)

    async def __call__(self, request: Request) -> None:
        if not self.hashes:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "this API needs an API key", "send the header 'Authorization: Bearer <key>' with a "
                           "key the operator gave you", CHALLENGE)
        digest = key_hash(token.strip()).encode()
        matched = False
        for known in self.hashes:  # every digest compared, in constant time: no early exit to time
            matched |= hmac.compare_digest(digest, known)
        if not matched:
            raise ApiError(403, "this API key is not accepted here (unknown or revoked)",
                           "check the key, or ask the operator for a new one")
