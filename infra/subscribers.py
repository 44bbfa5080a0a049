"""Telling subscribers: an outbox of delivery records in the bucket, tried at once, retried until final.

`FanOutNotifier.notify(event)` adds links to the results (presigned on S3), writes the event next to the
results, and opens one delivery record per subscriber (the operator's settings, plus the webhooks of the
job's `job.json`), created once per event and subscriber (`if_none_match`), so a re-run tells no one twice.
Each delivery is tried at once and retried in place for `webhook_inline_budget_s`; what is still due
after that has a pointer under `work/outbox/` that `redeliver_due` (the worker's and the Modal sweeper's
periodic call) picks up: exponential backoff with jitter, never sooner than `Retry-After`, until
`webhook_max_attempts`. A 410 disables the webhook. Every attempt is in the record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from events.outbound import JobEvent, StoreEventLog, with_links
from events.webhooks import (
    Attempt,
    DeliveryRecord,
    DeliveryState,
    SendResult,
    channel_id,
    message_id,
    retry_delay_s,
)
from infra.publishers import Channel
from pipeline import layout
from pipeline.manifests import utcnow
from pipeline.storage import ObjectStore, PreconditionFailed

log = structlog.get_logger("dropfit.deliver")

OUTBOX_PREFIX = "work/outbox/"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    base_s: float = 5.0
    cap_s: float = 3600.0
    inline_budget_s: float = 20.0


class Outbox:
    def __init__(self, store: ObjectStore, policy: RetryPolicy, *, clock: Callable[[], datetime] = utcnow,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._store = store
        self._policy = policy
        self._clock = clock
        self._sleep = sleep

    def open(self, event: JobEvent, channel: Channel, per_job: bool) -> tuple[str, DeliveryRecord, str] | None:
        """The new record of (event, channel) and its etag; None when one exists (a re-run)."""
        msg, ch = message_id(event.id), channel_id(channel.kind, channel.target)
        key = layout.delivery_key(event.subject, msg, ch)
        if self._store.head(key) is not None:
            return None
        record = DeliveryRecord(event_id=event.id, event_type=event.type, job_id=event.subject, message_id=msg,
                                channel=ch, kind=channel.kind, target=channel.target, per_job=per_job,
                                body=event.model_dump_json(),
                                next_attempt_at=self._clock() + timedelta(seconds=self._policy.inline_budget_s + 60))
        self._store.put(layout.outbox_key(key), key.encode())  # the pointer first: a record is never orphaned
        try:
            info = self._store.put(key, record.to_bytes(), if_none_match=True, content_type="application/json")
        except PreconditionFailed:
            return None
        return key, record, info.etag

    def deliver(self, key: str, record: DeliveryRecord, etag: str, channel: Channel, *,
                budget_s: float) -> DeliveryRecord:
        """Attempt until final, or until the next retry is beyond `budget_s` from now (then it is scheduled)."""
        spent = 0.0
        while True:
            if self._store.head(layout.disabled_key(record.channel)) is not None:
                return self._finish(key, record, etag, "disabled", "the endpoint answered 410 Gone earlier")
            started = time.perf_counter()
            now = self._clock()
            result = _send(channel, record, now)
            attempt = Attempt(number=len(record.attempts) + 1, at=now, outcome=result.outcome, status=result.status,
                              error=result.error, duration_ms=round((time.perf_counter() - started) * 1000, 1))
            record = record.model_copy(update={"attempts": (*record.attempts, attempt)})
            log.info("delivery.attempt", job=record.job_id, channel=record.channel, kind=record.kind,
                     attempt=attempt.number, outcome=result.outcome, status=result.status, error=result.error)
            if result.outcome == "disabled":
                marker = record.model_dump_json(include={"target", "kind", "attempts"}).encode()
                self._store.put(layout.disabled_key(record.channel), marker, content_type="application/json")
            if result.outcome != "retry":
                return self._finish(key, record, etag, result.outcome, result.error)
            if attempt.number >= self._policy.max_attempts:
                return self._finish(key, record, etag, "failed", f"gave up after {attempt.number} attempts")
            delay = retry_delay_s(attempt.number, self._policy.base_s, self._policy.cap_s, result.retry_after_s)
            if spent + delay > budget_s:
                record = record.model_copy(update={"next_attempt_at": self._clock() + timedelta(seconds=delay)})
                self._save(key, record, etag)
                return record
            new_etag = self._save(key, record, etag)
            if new_etag is None:
                return record
            etag, spent = new_etag, spent + delay
            self._sleep(delay)

    def redeliver_due(self, channel_for: Callable[[DeliveryRecord], Channel | None]) -> int:
        """One attempt at every pending delivery whose time has come; returns how many were attempted."""
        attempted = 0
        for pointer in list(self._store.list(OUTBOX_PREFIX)):
            try:
                attempted += self._redeliver(pointer.key, channel_for)
            except Exception:  # noqa: BLE001 - one broken record must not stop the others; it stays pending
                log.exception("delivery.redeliver_failed", pointer=pointer.key)
        return attempted

    def _redeliver(self, pointer: str, channel_for: Callable[[DeliveryRecord], Channel | None]) -> int:
        key = self._store.get(pointer).decode()
        info = self._store.head(key)
        record = DeliveryRecord.model_validate_json(self._store.get(key)) if info else None
        if info is None or record is None or record.state != "pending":
            self._store.delete(pointer)
            return 0
        if record.next_attempt_at and record.next_attempt_at > self._clock():
            return 0
        channel = channel_for(record)
        if channel is None:
            self._finish(key, record, info.etag, "failed", "the subscriber is no longer configured")
            return 0
        self.deliver(key, record, info.etag, channel, budget_s=0.0)
        return 1

    def _finish(self, key: str, record: DeliveryRecord, etag: str, state: DeliveryState,
                reason: str | None) -> DeliveryRecord:
        record = record.model_copy(update={"state": state, "reason": reason, "next_attempt_at": None})
        if self._save(key, record, etag) is not None:
            self._store.delete(layout.outbox_key(key))
        level = {"delivered": "info", "disabled": "warning"}.get(state, "error")
        getattr(log, level)("delivery." + state, job=record.job_id, channel=record.channel, kind=record.kind,
                            attempts=len(record.attempts), reason=reason, record=key)
        return record

    def _save(self, key: str, record: DeliveryRecord, etag: str) -> str | None:
        """Compare-and-swap: None when another worker changed the record meanwhile (it carries on)."""
        try:
            return self._store.put(key, record.to_bytes(), if_match=etag, content_type="application/json").etag
        except PreconditionFailed:
            log.info("delivery.taken_over", record=key)
            return None


def _send(channel: Channel, record: DeliveryRecord, now: datetime) -> SendResult:
    """One attempt; an unexpected error is an attempt that may be retried, never an exception."""
    try:
        return channel.send(record, now)
    except Exception as exc:  # noqa: BLE001 - recorded in the delivery record, retried like a network error
        return SendResult("retry", error=f"{type(exc).__name__}: {exc}")


Channels = Callable[[JobEvent], list[tuple[Channel, bool]]]


class FanOutNotifier:
    """The product's notifier: links, the event log next to the results, then every subscriber."""

    def __init__(self, store: ObjectStore, outbox: Outbox, channels: Channels, link: Callable[[str], str],
                 *, expires_s: int, inline_budget_s: float) -> None:
        self._store = store
        self._outbox = outbox
        self._channels = channels
        self._link = link
        self._expires_s = expires_s
        self._budget = inline_budget_s

    def notify(self, event: JobEvent) -> None:
        event = with_links(event, self._link, self._expires_s)
        opened: list[tuple[str, DeliveryRecord, str, Channel]] = []
        for channel, per_job in self._channels(event):
            new = self._outbox.open(event, channel, per_job)
            if new is not None:
                opened.append((*new, channel))
        # Last: the event next to the results says "told" (every delivery is durably open, retried by the
        # sweeper); a worker that dies before it leaves the job to be told again.
        StoreEventLog(self._store).notify(event)
        if not opened:
            return
        with ThreadPoolExecutor(max_workers=min(8, len(opened)), thread_name_prefix="dropfit-deliver") as pool:
            list(pool.map(lambda item: self._outbox.deliver(*item, budget_s=self._budget), opened))
