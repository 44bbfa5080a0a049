"""Telling subscribers: an outbox of delivery records in the bucket, tried at once, retried until final.

`FanOutNotifier.notify(event)` adds links to the results (presigned on S3), opens one delivery record per
subscriber (the operator's settings, plus the webhooks of the job's `job.json`), created once per event and
subscriber (`if_none_match`), so a re-run tells no one twice, writes the event next to the results, and
returns: the deliveries go on in the background (`DeliveryPool`), so a step that tells subscribers never
waits on them and holds no claim while they run. Each delivery is tried at once and retried in place for
`webhook_inline_budget_s`; what is still due after that has a pointer under `work/outbox/` that
`redeliver_due` (every sweep: the local runtime's, the worker's, the Modal sweeper's) picks up: exponential
backoff with jitter, never sooner than `Retry-After`, until `webhook_max_attempts`. A redelivery first marks
the record taken (compare-and-swap), so two sweepers never send it twice. A 410 disables the webhook. Every
attempt is in the record; a process that exits with deliveries in progress leaves them pending, retried when due.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

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
        data = record.to_bytes()
        try:
            info = self._store.put(key, data, if_none_match=True, content_type="application/json")
        except PreconditionFailed:
            found = self._store.head(key)
            if found is None or self._store.get(key) != data:  # another worker's record
                return None
            return key, record, found.etag  # ours: the create's answer was lost and its retry found it
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
        for key, record, etag in self.due():
            try:
                attempted += self.redeliver(key, record, etag, channel_for)
            except Exception:  # noqa: BLE001 - one broken record must not stop the others; it stays pending
                log.exception("delivery.redeliver_failed", record=key)
        return attempted

    def due(self) -> list[tuple[str, DeliveryRecord, str]]:
        """The pending deliveries whose retry time has come, as (key, record, etag); pointers to records that
        are final (or gone) are removed on the way."""
        found = []
        for pointer in list(self._store.list(OUTBOX_PREFIX)):
            try:
                key = self._store.get(pointer.key).decode()
                info = self._store.head(key)
                record = DeliveryRecord.model_validate_json(self._store.get(key)) if info else None
                if info is None or record is None or record.state != "pending":
                    self._store.delete(pointer.key)
                elif record.next_attempt_at is None or record.next_attempt_at <= self._clock():
                    found.append((key, record, info.etag))
            except Exception:  # noqa: BLE001 - one broken record must not stop the others; it stays pending
                log.exception("delivery.unreadable", pointer=pointer.key)
        return found

    def redeliver(self, key: str, record: DeliveryRecord, etag: str,
                  channel_for: Callable[[DeliveryRecord], Channel | None]) -> int:
        """One attempt at a due delivery (from `due()`), once it is marked taken: 0 when another worker took it
        first. Taken means its next attempt is pushed past this one, so a sweeper that dies mid-attempt leaves
        it to be retried then."""
        hold = timedelta(seconds=self._policy.inline_budget_s + 60)
        taken = record.model_copy(update={"next_attempt_at": self._clock() + hold})
        new_etag = self._save(key, taken, etag)
        if new_etag is None:
            return 0
        channel = channel_for(taken)
        if channel is None:
            self._finish(key, taken, new_etag, "failed", "the subscriber is no longer configured")
            return 0
        self.deliver(key, taken, new_etag, channel, budget_s=0.0)
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


class ChannelSource(Protocol):
    """Who is told of an event, and the channel that retries a pending record (`infra.notifications`)."""

    def __call__(self, event: JobEvent) -> list[tuple[Channel, bool]]: ...

    def for_record(self, record: DeliveryRecord) -> Channel | None: ...


class DeliveryPool:
    """Deliveries in the background, on daemon threads (at most `workers`, started on demand, gone when idle):
    the step that opened them returns at once, and a process may exit while some are still going (their
    records stay pending in the outbox, retried when due)."""

    def __init__(self, workers: int = 8, idle_s: float = 30.0) -> None:
        self._size = workers
        self._idle_s = idle_s
        self._queue: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._active = 0  # submitted, not yet finished
        self._threads = 0

    def submit(self, fn: Callable[[], object]) -> None:
        with self._cond:
            self._active += 1
            start = self._threads < min(self._size, self._active)
            if start:
                self._threads += 1
        self._queue.put(fn)
        if start:
            threading.Thread(target=self._loop, name="dropfit-deliver", daemon=True).start()

    @property
    def active(self) -> int:
        with self._cond:
            return self._active

    def wait(self, timeout: float | None = None) -> int:
        """Wait until every delivery ended, at most `timeout` s; returns how many are still going."""
        with self._cond:
            self._cond.wait_for(lambda: self._active == 0, timeout)
            return self._active

    def _loop(self) -> None:
        while True:
            try:
                fn = self._queue.get(timeout=self._idle_s)
            except queue.Empty:
                with self._cond:
                    if self._active == 0:
                        self._threads -= 1
                        return
                continue
            try:
                fn()
            except Exception:  # noqa: BLE001 - recorded as the delivery's own failure where it can be; keep the thread
                log.exception("delivery.crashed")
            finally:
                with self._cond:
                    self._active -= 1
                    self._cond.notify_all()


class FanOutNotifier:
    """The product's notifier: links, the records of every subscriber, the event log next to the results,
    then the deliveries: on `pool` (in the background) or, without one, before `notify` returns."""

    def __init__(self, store: ObjectStore, outbox: Outbox, channels: ChannelSource, link: Callable[[str], str],
                 *, expires_s: int, inline_budget_s: float, pool: DeliveryPool | None = None) -> None:
        self._store = store
        self._outbox = outbox
        self._channels = channels
        self._link = link
        self._expires_s = expires_s
        self._budget = inline_budget_s
        self._pool = pool
        self._in_hand: set[str] = set()  # records this process is delivering now
        self._lock = threading.Lock()

    def notify(self, event: JobEvent) -> None:
        event = with_links(event, self._link, self._expires_s)
        opened: list[tuple[str, DeliveryRecord, str, Channel]] = []
        for channel, per_job in self._channels(event):
            new = self._outbox.open(event, channel, per_job)
            if new is not None:
                opened.append((*new, channel))
        # Then the event next to the results says "told" (every delivery is durably open, retried by the
        # sweeper); a worker that dies before it leaves the job to be told again.
        StoreEventLog(self._store).notify(event)
        for key, record, etag, channel in opened:
            self._start(key, partial(self._outbox.deliver, key, record, etag, channel, budget_s=self._budget))

    def redeliver_due(self) -> int:
        """Start one attempt at each pending delivery whose retry time has come (those this process is not
        already delivering); returns how many were started."""
        started = 0
        for key, record, etag in self._outbox.due():
            started += self._start(key, partial(self._outbox.redeliver, key, record, etag, self._channels.for_record))
        return started

    def settle(self, timeout: float | None = None) -> int:
        """Wait for the deliveries in progress, at most `timeout` s; returns how many are still going."""
        return 0 if self._pool is None else self._pool.wait(timeout)

    def _start(self, key: str, deliver: Callable[[], object]) -> bool:
        with self._lock:
            if key in self._in_hand:
                return False
            self._in_hand.add(key)

        def run() -> None:
            try:
                deliver()
            finally:
                with self._lock:
                    self._in_hand.discard(key)

        if self._pool is None:
            try:
                run()
            except Exception:  # noqa: BLE001 - the record stays pending and is retried when due
                log.exception("delivery.crashed", record=key)
        else:
            self._pool.submit(run)
        return True
