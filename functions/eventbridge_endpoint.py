"""The EventBridge route's web endpoint: authenticate, check, hand off, answer (well within EventBridge's 5 s).

EventBridge's API destination sends the connection's API key as the `x-dropfit-token` header; it is
compared in constant time with `DROPFIT_ENDPOINT_TOKEN`. The body is parsed by the one normalizer (so a
malformed event is refused with 400: EventBridge does not retry 4xx and parks the event in the DLQ); the
routing itself (storage reads) happens in a spawned function, so the answer never waits on S3.

Statuses: 202 accepted, 200 nothing to do, 400 not an event, 401 wrong token, 405 not POST, 413 too big,
503 no token configured or the hand-off failed (EventBridge retries 5xx, for up to a day).

A plain ASGI app (no web framework): Modal serves it with `@modal.asgi_app()`, tests call it directly.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from events.normalize import InvalidEvent, normalize
from infra.policies import TOKEN_HEADER

log = structlog.get_logger("dropfit.endpoint")

MAX_BODY_BYTES = 256 * 1024  # EventBridge's largest event
Accept = Callable[[str], object]  # hands the raw event on (spawns the routing function)
Asgi = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]],
                Awaitable[None]]


def authorized(headers: Mapping[str, str], token: str | None) -> bool:
    if not token:
        return False
    return hmac.compare_digest(headers.get(TOKEN_HEADER, "").encode(), token.encode())


def handle(method: str, headers: Mapping[str, str], body: bytes, token: str | None,
           accept: Accept) -> tuple[int, dict[str, Any]]:
    if method != "POST":
        return 405, {"error": "POST only"}
    if not token:
        return 503, {"error": "the endpoint has no token configured (DROPFIT_ENDPOINT_TOKEN)"}
    if not authorized(headers, token):
        return 401, {"error": f"missing or wrong {TOKEN_HEADER}"}
    if len(body) > MAX_BODY_BYTES:
        return 413, {"error": "event too large"}
    try:
        events = normalize(body)
    except InvalidEvent as exc:
        log.warning("endpoint.invalid_event", error=str(exc))
        return 400, {"error": str(exc)}
    if not events:
        return 200, {"accepted": 0}
    try:
        accept(body.decode())
    except Exception as exc:  # noqa: BLE001 - the hand-off failed: EventBridge retries on 5xx
        log.warning("endpoint.handoff_failed", error=f"{type(exc).__name__}: {exc}")
        return 503, {"error": "could not hand the event on; retry"}
    log.info("endpoint.accepted", events=len(events), keys=[e.key for e in events][:5])
    return 202, {"accepted": len(events)}


def asgi_app(token: str | None, accept: Accept) -> Asgi:
    async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                  send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        status, payload = await asyncio.to_thread(handle, scope.get("method", "GET"), headers, body, token, accept)
        data = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    return app


async def _read_body(receive: Callable[[], Awaitable[dict[str, Any]]]) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body") or size > MAX_BODY_BYTES:
            return b"".join(chunks)


async def _lifespan(receive: Callable[[], Awaitable[dict[str, Any]]],
                    send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
