"""Claims: one conditional create per step, with a lease, so duplicates skip and dead workers are replaced.

A claim is `work/{step}/{subject}/_claim.json`, created with if_none_match. A live claim held by another
worker means "someone is on it": the duplicate skips (the holder's done marker will wake what follows).
An expired claim is taken over with a compare-and-swap on its etag, so exactly one taker wins. The
holder renews its lease from a heartbeat thread; a holder whose renewal fails has lost the claim and
must not commit. A write whose answer was lost (the store retried it and found the key changed) is
recognised as ours by its record (same owner, same times), not mistaken for another worker's claim.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, ValidationError

from events.tasks import Task
from pipeline import layout
from pipeline.errors import LeaseLost
from pipeline.storage import ObjectNotFound, ObjectStore, PreconditionFailed

Clock = Callable[[], float]


class ClaimRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = 1
    step: str
    subject: str
    owner: str
    acquired_at: datetime
    expires_at: datetime
    takeovers: int = 0


@dataclass(frozen=True)
class Held:
    key: str
    record: ClaimRecord
    etag: str


class Claims:
    def __init__(self, store: ObjectStore, owner: str, lease_s: float, clock: Clock = time.time) -> None:
        self._store = store
        self.owner = owner
        self.lease_s = lease_s
        self._clock = clock

    def _record(self, task: Task, takeovers: int = 0) -> ClaimRecord:
        now = self._clock()
        return ClaimRecord(
            step=task.step,
            subject=task.subject,
            owner=self.owner,
            acquired_at=datetime.fromtimestamp(now, UTC),
            expires_at=datetime.fromtimestamp(now + self.lease_s, UTC),
            takeovers=takeovers,
        )

    def acquire(self, task: Task) -> Held | None:
        """Our claim on the task, or None when another live worker holds it."""
        key = layout.claim_key(task.step, task.subject)
        for _ in range(3):
            record = self._record(task)
            try:
                info = self._store.put(key, record.model_dump_json().encode(), if_none_match=True)
                return Held(key, record, info.etag)
            except PreconditionFailed:
                pass
            current = self._read(key)
            if current is None:
                continue  # released between our create and our read: try again
            existing, etag = current
            if existing == record:  # our own create, whose answer was lost and whose retry then found it
                return Held(key, record, etag)
            if existing is not None and existing.expires_at.timestamp() > self._clock():
                return None
            takeovers = existing.takeovers + 1 if existing else 1
            record = self._record(task, takeovers)
            try:
                info = self._store.put(key, record.model_dump_json().encode(), if_match=etag)
                return Held(key, record, info.etag)
            except (PreconditionFailed, ObjectNotFound):
                return None  # another taker won
        return None

    def _read(self, key: str) -> tuple[ClaimRecord | None, str] | None:
        info = self._store.head(key)
        if info is None:
            return None
        try:
            data = self._store.get(key)
        except ObjectNotFound:
            return None
        try:
            return ClaimRecord.model_validate_json(data), info.etag
        except ValidationError:
            return None, info.etag  # unreadable claim: treat as expired

    def renew(self, held: Held) -> Held:
        now = self._clock()
        record = held.record.model_copy(update={"expires_at": datetime.fromtimestamp(now + self.lease_s, UTC)})
        try:
            info = self._store.put(held.key, record.model_dump_json().encode(), if_match=held.etag)
        except (PreconditionFailed, ObjectNotFound) as exc:
            raise LeaseLost(f"claim {held.key} was taken over") from exc
        return Held(held.key, record, info.etag)

    def release(self, held: Held) -> None:
        info = self._store.head(held.key)
        if info is not None and info.etag == held.etag:
            self._store.delete(held.key)

    def clear_leftovers(self, steps: Iterable[str], done: Callable[[Task], bool]) -> list[str]:
        """Delete the expired claims of orchestration steps that are done (a worker killed after the step's
        effect, before its release, leaves one that nobody would ever take again); returns their keys.
        Only `steps` whose folders under work/ hold nothing but claims: listing them is cheap."""
        cleared = []
        for step in steps:
            for info in list(self._store.list(f"{layout.WORK}{step}/")):
                subject, _, name = info.key[len(layout.WORK) + len(step) + 1:].rpartition("/")
                if name != "_claim.json" or not subject:
                    continue
                current = self._read(info.key)
                if current is None or current[1] != info.etag:
                    continue
                record = current[0]
                if record is not None and record.expires_at.timestamp() > self._clock():
                    continue
                head = self._store.head(info.key)
                if head is not None and head.etag == info.etag and done(Task(step=step, subject=subject)):
                    self._store.delete(info.key)
                    cleared.append(info.key)
        return cleared


class Lease:
    """Holds a claim for the duration of a `with` block, renewing it every lease/3 seconds."""

    def __init__(self, claims: Claims, held: Held) -> None:
        self._claims = claims
        self.held = held
        self._lost: LeaseLost | None = None
        self._ended = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease:{held.key}", daemon=True)

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._end(None)

    def abandon(self, reason: str) -> None:
        """Give the claim up now, from another thread, while its holder may still be running: the claim is
        released (another worker may take the step at once) and the holder's next `check()` raises."""
        self._end(LeaseLost(f"claim {self.held.key} was given up: {reason}"))

    def _end(self, lost: LeaseLost | None) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            if self._ended:
                return
            self._ended = True
            if self._lost is None:
                self._claims.release(self.held)
                self._lost = lost

    def _beat(self) -> None:
        while not self._stop.wait(self._claims.lease_s / 3):
            try:
                self.held = self._claims.renew(self.held)
            except LeaseLost as exc:
                self._lost = exc
                return

    def check(self) -> None:
        """Raise LeaseLost if another worker took the claim, or it was given up: call before committing."""
        if self._lost is not None:
            raise self._lost
