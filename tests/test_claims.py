"""Claims on a real folder bucket: one holder at a time, takeover after the lease, no stale commits."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from events.tasks import Task
from functions.claims import ClaimRecord, Claims, Held, Lease
from infra.folder_store import FolderStore
from pipeline import layout
from pipeline.errors import LeaseLost

TASK = Task(step="avatar", subject="0123456789abcdef01234567")
KEY = layout.claim_key(TASK.step, TASK.subject)
LEASE_S = 30.0


class FakeClock:
    """A clock that moves only when a test moves it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> FolderStore:
    return FolderStore(tmp_path / "bucket")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def on_disk(store: FolderStore) -> ClaimRecord:
    return ClaimRecord.model_validate_json(store.get(KEY))


def test_first_acquire_wins_and_records_the_lease(store: FolderStore, clock: FakeClock) -> None:
    held = Claims(store, "w1", LEASE_S, clock).acquire(TASK)
    assert held is not None and held.key == KEY
    record = on_disk(store)
    assert record == held.record
    assert (record.step, record.subject, record.owner, record.takeovers) == (TASK.step, TASK.subject, "w1", 0)
    assert record.expires_at.timestamp() - record.acquired_at.timestamp() == pytest.approx(LEASE_S)
    assert store.head(KEY).etag == held.etag  # type: ignore[union-attr]


def test_second_worker_skips_while_the_lease_is_live(store: FolderStore, clock: FakeClock) -> None:
    first = Claims(store, "w1", LEASE_S, clock).acquire(TASK)
    second = Claims(store, "w2", LEASE_S, clock)
    assert second.acquire(TASK) is None
    clock.now += LEASE_S - 1
    assert second.acquire(TASK) is None
    assert on_disk(store).owner == "w1"
    assert first is not None and store.head(KEY).etag == first.etag  # type: ignore[union-attr]


def test_takeover_after_the_lease_and_the_old_holder_loses(store: FolderStore, clock: FakeClock) -> None:
    w1, w2 = Claims(store, "w1", LEASE_S, clock), Claims(store, "w2", LEASE_S, clock)
    old = w1.acquire(TASK)
    assert old is not None
    clock.now += LEASE_S + 1
    new = w2.acquire(TASK)
    assert new is not None
    assert (new.record.owner, new.record.takeovers) == ("w2", 1)
    assert on_disk(store) == new.record
    with pytest.raises(LeaseLost):
        w1.renew(old)
    assert w1.acquire(TASK) is None  # the new holder's lease is live
    assert on_disk(store).owner == "w2"


def test_renew_moves_the_expiry_forward(store: FolderStore, clock: FakeClock) -> None:
    claims = Claims(store, "w1", LEASE_S, clock)
    held = claims.acquire(TASK)
    assert held is not None
    clock.now += 10
    renewed = claims.renew(held)
    assert renewed.record.expires_at.timestamp() == pytest.approx(clock.now + LEASE_S)
    assert on_disk(store) == renewed.record
    assert claims.renew(renewed).etag == store.head(KEY).etag  # type: ignore[union-attr]
    with pytest.raises(LeaseLost):
        claims.renew(held)  # a stale handle: its etag is not the claim's any more


def test_release_deletes_our_own_claim(store: FolderStore, clock: FakeClock) -> None:
    claims = Claims(store, "w1", LEASE_S, clock)
    held = claims.acquire(TASK)
    assert held is not None
    claims.release(held)
    assert store.head(KEY) is None
    claims.release(held)  # twice is harmless
    assert Claims(store, "w2", LEASE_S, clock).acquire(TASK) is not None


def test_release_leaves_a_taken_over_claim_alone(store: FolderStore, clock: FakeClock) -> None:
    w1, w2 = Claims(store, "w1", LEASE_S, clock), Claims(store, "w2", LEASE_S, clock)
    old = w1.acquire(TASK)
    assert old is not None
    clock.now += LEASE_S + 1
    new = w2.acquire(TASK)
    assert new is not None
    w1.release(old)
    assert on_disk(store) == new.record
    w2.release(new)
    assert store.head(KEY) is None


@pytest.mark.parametrize("garbage", [b"\x00\xffnot json", b"", b'{"owner": "w0"}'], ids=repr)
def test_unreadable_claim_counts_as_expired(store: FolderStore, clock: FakeClock, garbage: bytes) -> None:
    store.put(KEY, garbage)
    held = Claims(store, "w1", LEASE_S, clock).acquire(TASK)
    assert held is not None
    assert (held.record.owner, held.record.takeovers) == ("w1", 1)
    assert on_disk(store) == held.record


def test_racing_workers_get_exactly_one_claim(store: FolderStore, clock: FakeClock) -> None:
    workers = 16
    start = threading.Barrier(workers)
    results: list[Held | None] = [None] * workers
    errors: list[BaseException] = []

    def race(i: int) -> None:
        claims = Claims(store, f"w{i}", LEASE_S, clock)
        try:
            start.wait()
            results[i] = claims.acquire(TASK)
        except BaseException as exc:  # surfaced below: a thread's exception would be lost
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    winners = [h for h in results if h is not None]
    assert len(winners) == 1
    assert on_disk(store) == winners[0].record


# ---- Lease -----------------------------------------------------------------------------------------


def test_lease_renews_while_held_and_releases_on_exit(store: FolderStore) -> None:
    claims = Claims(store, "w1", lease_s=0.6)
    held = claims.acquire(TASK)
    assert held is not None
    first_expiry = held.record.expires_at
    with Lease(claims, held) as lease:
        time.sleep(1.0)  # past the first expiry: only renewals keep the claim
        lease.check()
        record = on_disk(store)
        assert record.owner == "w1"
        assert record.expires_at > first_expiry
        assert record.expires_at.timestamp() > time.time()
        assert Claims(store, "w2", lease_s=0.6).acquire(TASK) is None
    assert store.head(KEY) is None


def test_lease_that_was_taken_over_reports_it_and_keeps_the_new_claim(
    store: FolderStore, clock: FakeClock
) -> None:
    w1, w2 = Claims(store, "w1", 0.15, clock), Claims(store, "w2", 0.15, clock)
    old = w1.acquire(TASK)
    assert old is not None
    clock.now += 1
    new = w2.acquire(TASK)
    assert new is not None
    with Lease(w1, old) as lease:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the heartbeat renews every lease/3 s and finds the takeover
            try:
                lease.check()
            except LeaseLost:
                break
            time.sleep(0.01)
        with pytest.raises(LeaseLost):
            lease.check()
    assert on_disk(store) == new.record  # the loser's exit does not release the winner's claim


def test_an_abandoned_lease_releases_the_claim_at_once_and_its_holder_cannot_commit(
    store: FolderStore, clock: FakeClock
) -> None:
    w1 = Claims(store, "w1", LEASE_S, clock)
    held = w1.acquire(TASK)
    assert held is not None
    with Lease(w1, held) as lease:
        lease.abandon("the worker is stopping")  # from the stopping thread, while the holder still runs
        assert store.head(KEY) is None
        assert Claims(store, "w2", LEASE_S, clock).acquire(TASK) is not None, "the next worker takes it at once"
        with pytest.raises(LeaseLost, match="given up"):
            lease.check()
    assert on_disk(store).owner == "w2", "the holder's exit leaves the next worker's claim alone"


# ---- leftovers and lost answers ----------------------------------------------------------------------------


def test_leftover_claims_of_done_steps_are_cleared_and_live_or_due_ones_kept(store: FolderStore,
                                                                              clock: FakeClock) -> None:
    dead = Claims(store, "dead", LEASE_S, clock)
    for job in ("told", "live", "due"):
        assert dead.acquire(Task(step="publish", subject=job)) is not None
    clock.now += LEASE_S + 1
    assert Claims(store, "alive", LEASE_S, clock).acquire(Task(step="publish", subject="live")) is not None
    cleared = Claims(store, "sweeper", LEASE_S, clock).clear_leftovers(["publish", "fail"],
                                                                       lambda task: task.subject != "due")
    assert cleared == [layout.claim_key("publish", "told")]
    assert store.head(layout.claim_key("publish", "live")) is not None, "a live claim is someone's work"
    assert store.head(layout.claim_key("publish", "due")) is not None, "a step still due is taken over, not cleared"


def lose_first_answer(client, key_part: str) -> list[int]:
    """Make the first PUT of a key holding `key_part` land on the server but its answer be lost: botocore retries
    it, as after a timeout or a reset, and the retry meets the first attempt's own write. Returns the attempts."""
    seen: list[int] = []

    def needs_retry(attempts: int, response=None, request_dict=None, **kwargs) -> float | None:
        if request_dict is None or key_part not in request_dict.get("url_path", ""):
            return None
        seen.append(attempts)
        status = response[0].status_code if response else None
        return 0.0 if attempts == 1 and status == 200 else None

    client.meta.events.register_first("needs-retry.s3.PutObject", needs_retry)
    return seen


def test_a_lost_answer_to_our_own_claim_on_s3_is_ours_not_another_workers(moto_server, s3_bucket) -> None:
    from infra.s3_store import S3Store

    client = moto_server.client("s3")
    seen = lose_first_answer(client, KEY)
    store = S3Store(client, s3_bucket)
    held = Claims(store, "w1", LEASE_S).acquire(TASK)
    assert seen[:2] == [1, 2], "the first answer was lost and the put retried"
    assert held is not None and held.record.owner == "w1", "the worker would wait a whole lease for itself"
    assert store.head(KEY).etag == held.etag  # type: ignore[union-attr]
    assert Claims(S3Store(moto_server.client("s3"), s3_bucket), "w2", LEASE_S).acquire(TASK) is None


def test_a_lost_answer_to_a_delivery_record_on_s3_still_delivers_at_once(moto_server, s3_bucket) -> None:
    from events.outbound import job_event
    from infra.publishers import WebhookChannel
    from infra.s3_store import S3Store
    from infra.subscribers import Outbox, RetryPolicy

    event = job_event("b", "j1", "plan0", True, {"manifest": "results/j1/manifest.json", "files": []})
    channel = WebhookChannel("https://hooks.example.com/x", ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",), per_job=True,
                             resolver=lambda host, port: ["93.184.216.34"])
    client = moto_server.client("s3")
    seen = lose_first_answer(client, "/_deliveries/")
    opened = Outbox(S3Store(client, s3_bucket), RetryPolicy()).open(event, channel, per_job=True)
    assert seen[:2] == [1, 2]
    assert opened is not None, "without its record the delivery waited 80 s for the sweeper"
