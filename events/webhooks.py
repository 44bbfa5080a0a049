"""Delivering our events to subscribers: the pure parts (signing, retry timing, the delivery record).

Standard Webhooks 1.0: `webhook-id` (stable across retries of one event: the receiver's dedupe key),
`webhook-timestamp` (per attempt) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`,
one per secret, space-separated during a secret rotation). Signing is the `standardwebhooks` package's
own (stdlib only), so what we send is what its `Webhook.verify` accepts.

A delivery record (`results/{job_id}/_deliveries/{message_id}-{channel}.json`) keeps the exact body and
every attempt, so nothing is silently dropped: a subscriber's outcome is in storage, whatever it was.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict
from standardwebhooks import Webhook

from pipeline.backoff import backoff_s

CONTENT_TYPE = "application/cloudevents+json"
MAX_RETRY_AFTER_S = 24 * 3600.0  # a Retry-After beyond a day is treated as a day

SendOutcome = Literal["delivered", "retry", "disabled", "failed"]
DeliveryState = Literal["pending", "delivered", "disabled", "failed"]
ChannelKind = str  # a subscriber kind declared in infra/notifications.py (CHANNEL_KINDS): webhook, sns, ...


@dataclass(frozen=True)
class SendResult:
    """One attempt's outcome: `retry` is worth trying again; `disabled` (HTTP 410) and `failed` are final."""

    outcome: SendOutcome
    status: int | None = None
    error: str | None = None
    retry_after_s: float | None = None


class Attempt(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int
    at: datetime
    outcome: SendOutcome
    status: int | None = None
    error: str | None = None
    duration_ms: float


class DeliveryRecord(BaseModel):
    """One event to one subscriber: its body, every attempt, and what is next."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    event_id: str
    event_type: str
    job_id: str
    message_id: str
    channel: str  # kind-hash: stable per subscriber target
    kind: ChannelKind
    target: str  # the URL, ARN or queue URL
    per_job: bool  # from job.json (untrusted: the SSRF guard applies) or from the operator's settings
    body: str
    state: DeliveryState = "pending"
    attempts: tuple[Attempt, ...] = ()
    next_attempt_at: datetime | None = None
    reason: str | None = None

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()


def message_id(event_id: str) -> str:
    """The `webhook-id`: deterministic from the event, so every retry (and every re-run) carries it."""
    return "msg_" + hashlib.sha256(event_id.encode()).hexdigest()[:26]


def channel_id(kind: ChannelKind, target: str) -> str:
    return f"{kind}-{hashlib.sha256(target.encode()).hexdigest()[:12]}"


def sign_headers(msg_id: str, timestamp: datetime, body: str, secrets: Sequence[str]) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt; one `v1,` signature per secret (rotation)."""
    if not secrets:
        raise ValueError("no signing secret")
    signatures = " ".join(Webhook(secret).sign(msg_id, timestamp, body) for secret in secrets)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.astimezone(UTC).timestamp())),
        "webhook-signature": signatures,
        "content-type": CONTENT_TYPE,
    }


def classify(status: int) -> SendOutcome:
    """2xx delivered; 410 Gone disables the endpoint; anything else (429, 5xx, other 4xx) is retried."""
    if 200 <= status < 300:
        return "delivered"
    if status == 410:
        return "disabled"
    return "retry"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` in seconds, from delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER_S)


def retry_delay_s(attempt: int, base_s: float, cap_s: float, retry_after_s: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter after attempt `attempt` (1-based), never sooner than Retry-After."""
    return max(backoff_s(attempt, base_s, cap_s, rng), retry_after_s or 0.0)
