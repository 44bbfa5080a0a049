"""Subscribers: Standard Webhooks signing (verified by the `standardwebhooks` package), retry timing with
Retry-After, the outbox (records, inline retries, the sweeper's redelivery, 410, giving up), the SSRF
guard for per-job URLs, and the SNS/SQS/EventBridge publishers against moto. HTTP is a scripted fake
(`ScriptedPoster`) except in one loopback test of the real client."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from conftest import job_finished
from events.outbound import JobEvent, job_event
from events.webhooks import (
    DeliveryRecord,
    message_id,
    parse_retry_after,
    retry_delay_s,
    sign_headers,
)
from fakes import RunLog, make_fake_registry, photo
from functions.handlers import Handlers
from functions.runtime import LocalRuntime
from infra.folder_store import FolderStore
from infra.notifications import SettingsChannels, build_notifier
from infra.publishers import EventBridgeChannel, Poster, SnsChannel, SqsChannel, WebhookChannel
from infra.settings import Settings
from infra.subscribers import Outbox, RetryPolicy
from infra.webhook_client import HttpReply, RefusedUrl, Target, address_refusal, resolve_target
from pipeline import layout

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
PUBLIC = "93.184.216.34"


def public(host: str, port: int) -> list[str]:
    return [PUBLIC]


def private(host: str, port: int) -> list[str]:
    return ["10.0.0.7"]


@dataclass
class ScriptedPoster:
    """Answers each POST with the next scripted reply (the last one repeats); records every request."""

    replies: list[HttpReply | Exception]
    calls: list[tuple[Target, bytes, dict[str, str]]] = field(default_factory=list)

    def post(self, target: Target, body: bytes, headers: dict[str, str], timeout: float) -> HttpReply:
        self.calls.append((target, body, headers))
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def event(job: str = "j1", ok: bool = True) -> JobEvent:
    detail = {"manifest": f"results/{job}/manifest.json", "files": [f"results/{job}/model.glb"]} if ok else {
        "phase": "avatar", "reason": "no person", "user_action": "retake"}
    return job_event("bkt", job, "plan0", ok, detail)


def record_for(url: str = "https://hooks.example.com/x") -> DeliveryRecord:
    e = event()
    return DeliveryRecord(event_id=e.id, event_type=e.type, job_id="j1", message_id=message_id(e.id),
                          channel="webhook-x", kind="webhook", target=url, per_job=True, body=e.model_dump_json())


# ---- pure parts --------------------------------------------------------------------------------------


def test_signatures_verify_with_the_standardwebhooks_package_for_either_secret_in_a_rotation() -> None:
    now = datetime.now(UTC)
    body = event().model_dump_json()
    headers = sign_headers(message_id(event().id), now, body, [SECRET, OLD_SECRET])
    assert headers["webhook-signature"].count("v1,") == 2
    for secret in (SECRET, OLD_SECRET):
        assert Webhook(secret).verify(body, headers)["type"] == "dropfit.job.succeeded"
    assert message_id(event().id) == message_id(event().id) != message_id(event(ok=False).id)


def test_retry_after_and_backoff() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now) == 60.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None
    rng = random.Random(1)
    delays = [retry_delay_s(n, 5.0, 3600.0, rng=rng) for n in range(1, 12)]
    assert 2.5 <= delays[0] <= 7.5 and all(d <= 5400 for d in delays) and delays[-1] >= 1800
    assert retry_delay_s(1, 5.0, 3600.0, retry_after_s=90.0) == 90.0


def test_links_point_at_the_glb_angles_and_manifest() -> None:
    from events.outbound import with_links

    e = job_event("b", "j", "p", True, {"manifest": "results/j/manifest.json",
                                        "files": ["results/j/model.glb", "results/j/angles/045.png",
                                                  "results/j/angles/000.png"]})
    links = with_links(e, lambda key: f"https://signed/{key}", 3600).data["links"]
    assert links["glb"] == "https://signed/results/j/model.glb"
    assert links["angles"] == ["https://signed/results/j/angles/000.png", "https://signed/results/j/angles/045.png"]
    failed = with_links(event(ok=False), lambda key: f"https://signed/{key}", 60).data["links"]
    assert failed["error"] == "https://signed/results/j1/error.json"


# ---- the SSRF guard ----------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "::1", "fe80::1", "fd00:ec2::254", "::ffff:127.0.0.1", "100.64.0.1", "0.0.0.0"])
def test_non_public_addresses_are_refused(address: str) -> None:
    assert address_refusal(address, allow_private=False)


def test_the_operator_may_allow_private_addresses_but_never_metadata() -> None:
    assert address_refusal("127.0.0.1", allow_private=True) is None
    assert address_refusal("169.254.169.254", allow_private=True)
    assert address_refusal(PUBLIC, allow_private=False) is None


def test_per_job_urls_must_be_https_resolve_publicly_and_carry_no_credentials() -> None:
    with pytest.raises(RefusedUrl, match="https"):
        resolve_target("http://hooks.example.com/x", guard=True, allow_private=False, resolver=public)
    with pytest.raises(RefusedUrl, match="not a public address"):
        resolve_target("https://internal.example.com/x", guard=True, allow_private=False, resolver=private)
    with pytest.raises(RefusedUrl, match="credentials"):
        resolve_target("https://u:p@hooks.example.com/x", guard=True, allow_private=False, resolver=public)
    target = resolve_target("https://hooks.example.com:8443/x?a=1", guard=True, allow_private=False, resolver=public)
    assert (target.host, target.port, target.path, target.address) == ("hooks.example.com", 8443, "/x?a=1", PUBLIC)


# ---- the outbox --------------------------------------------------------------------------------------


def outbox(store: FolderStore, clock: Clock, **policy: Any) -> Outbox:
    return Outbox(store, RetryPolicy(**{"max_attempts": 5, "base_s": 2.0, "cap_s": 60.0, "inline_budget_s": 30.0,
                                        **policy}), clock=clock, sleep=clock.sleep)


def webhook(poster: Poster, url: str = "https://hooks.example.com/x", per_job: bool = True,
            secrets: tuple[str, ...] = (SECRET,)) -> WebhookChannel:
    return WebhookChannel(url, secrets, per_job=per_job, poster=poster, resolver=public)


def test_a_throttled_delivery_is_retried_in_place_honouring_retry_after(folder_store: FolderStore) -> None:
    clock = Clock()
    poster = ScriptedPoster([HttpReply(429, {"retry-after": "7"}), HttpReply(503, {}), HttpReply(200, {})])
    box = outbox(folder_store, clock)
    channel = webhook(poster)
    opened = box.open(event(), channel, per_job=True)
    assert opened is not None and box.open(event(), channel, per_job=True) is None, "one record per event"
    done = box.deliver(*opened, channel, budget_s=30.0)
    assert done.state == "delivered" and [a.status for a in done.attempts] == [429, 503, 200]
    assert clock.slept[0] >= 7.0
    ids = {headers["webhook-id"] for _, _, headers in poster.calls}
    assert ids == {message_id(event().id)}, "webhook-id is stable across retries"
    assert list(folder_store.list("work/outbox/")) == []
    stored = DeliveryRecord.model_validate_json(folder_store.get(opened[0]))
    assert stored.state == "delivered" and len(stored.attempts) == 3


def test_what_outlasts_the_inline_budget_is_redelivered_by_the_sweeper(folder_store: FolderStore) -> None:
    clock = Clock()
    poster = ScriptedPoster([HttpReply(503, {"retry-after": "120"}), HttpReply(204, {})])
    box = outbox(folder_store, clock)
    channel = webhook(poster)
    key, record, etag = box.open(event(), channel, per_job=True)  # type: ignore[misc]
    pending = box.deliver(key, record, etag, channel, budget_s=30.0)
    assert pending.state == "pending" and pending.next_attempt_at == clock.now + timedelta(seconds=120)
    assert box.redeliver_due(lambda r: channel) == 0, "not due yet"
    clock.now += timedelta(seconds=121)
    assert box.redeliver_due(lambda r: channel) == 1
    final = DeliveryRecord.model_validate_json(folder_store.get(key))
    assert final.state == "delivered" and [a.status for a in final.attempts] == [503, 204]
    assert list(folder_store.list("work/outbox/")) == []


def test_gone_disables_the_endpoint_and_a_dead_endpoint_fails_after_max_attempts(folder_store: FolderStore) -> None:
    clock = Clock()
    box = outbox(folder_store, clock, inline_budget_s=10_000.0)
    gone = ScriptedPoster([HttpReply(410, {})])
    first = box.deliver(*box.open(event("a"), webhook(gone), True), webhook(gone), budget_s=10_000.0)  # type: ignore[misc]
    second = box.deliver(*box.open(event("b"), webhook(gone), True), webhook(gone), budget_s=10_000.0)  # type: ignore[misc]
    assert (first.state, second.state, len(gone.calls)) == ("disabled", "disabled", 1)
    down = ScriptedPoster([ConnectionRefusedError("refused")])
    channel = webhook(down, url="https://down.example.com/x")
    failed = box.deliver(*box.open(event("c"), channel, True), channel, budget_s=10_000.0)  # type: ignore[misc]
    assert failed.state == "failed" and len(failed.attempts) == 5 and "gave up" in (failed.reason or "")


def test_no_secret_or_a_refused_url_fails_at_once_and_is_recorded(folder_store: FolderStore) -> None:
    def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError("must not resolve without a secret")

    clock = Clock()
    box = outbox(folder_store, clock)
    poster = ScriptedPoster([HttpReply(200, {})])
    unsigned = WebhookChannel("https://hooks.example.com/x", (), per_job=True, poster=poster, resolver=no_dns)
    result = box.deliver(*box.open(event("a"), unsigned, True), unsigned, budget_s=30.0)  # type: ignore[misc]
    assert result.state == "failed" and "DROPFIT_WEBHOOK_SECRET" in (result.reason or "")
    inside = WebhookChannel("https://intranet.example.com/x", (SECRET,), per_job=True, poster=poster, resolver=private)
    refused = box.deliver(*box.open(event("b"), inside, True), inside, budget_s=30.0)  # type: ignore[misc]
    assert refused.state == "failed" and "refused" in (refused.reason or "") and poster.calls == []


# ---- the notifier on a running pipeline ----------------------------------------------------------------


def test_the_pipeline_tells_the_operator_and_the_job_subscribers_once_each(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "bucket")
    settings = Settings(webhook_secret=SECRET, webhook_urls=("https://ops.example.com/all",))  # type: ignore[arg-type]
    poster = ScriptedPoster([HttpReply(200, {})])
    channels = SettingsChannels(store, settings, poster=poster, resolver=public)
    handlers = Handlers(store, make_fake_registry(RunLog(tmp_path / "runs.log")),
                        build_notifier(store, settings, channels=channels), lease_s=5)
    spec = {"subscribers": [{"url": "https://shop.example.com/hook"}, {"url": "https://ops.example.com/all"}]}
    with LocalRuntime(handlers, workers=2) as runtime:
        store.subscribe(runtime.submit_event)
        store.put(layout.incoming_spec_key("j1"), json.dumps(spec).encode())
        store.put(layout.incoming_image_key("j1", "person", "jpg"), photo((200, 40, 40)))
        store.put(layout.incoming_image_key("j1", "garment", "jpg"), photo((40, 40, 200)))
        assert runtime.run_until(lambda: job_finished(store, "j1"), timeout=30)
        handlers.notifier.notify(json_event(store, "j1"))  # a re-run of the notifier tells no one again
    hosts = sorted(target.host for target, _, _ in poster.calls)
    assert hosts == ["ops.example.com", "shop.example.com"]
    for _, body, headers in poster.calls:
        assert Webhook(SECRET).verify(body, headers)["data"]["links"]["manifest"].startswith("file://")


def test_a_job_refused_at_intake_still_tells_its_own_webhook(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "bucket")
    settings = Settings(webhook_secret=SECRET)  # type: ignore[arg-type]
    poster = ScriptedPoster([HttpReply(204, {})])
    notifier = build_notifier(store, settings, channels=SettingsChannels(store, settings, poster=poster,
                                                                         resolver=public))
    handlers = Handlers(store, make_fake_registry(RunLog(tmp_path / "runs.log")), notifier, lease_s=5)
    with LocalRuntime(handlers, workers=1) as runtime:
        store.subscribe(runtime.submit_event)
        store.put(layout.incoming_spec_key("bad"), json.dumps({"subscribers": [{"url": "https://shop.example.com/h"}]})
                  .encode())
        store.put(layout.incoming_image_key("bad", "person", "jpg"), b"not a jpeg")
        store.put(layout.incoming_image_key("bad", "garment", "jpg"), photo((40, 40, 200)))
        assert runtime.run_until(lambda: job_finished(store, "bad"), timeout=30)
    assert len(poster.calls) == 1
    _, body, headers = poster.calls[0]
    told = Webhook(SECRET).verify(body, headers)
    assert told["type"] == "dropfit.job.failed" and told["data"]["links"]["error"].endswith("results/bad/error.json")


def json_event(store: FolderStore, job: str) -> JobEvent:
    return JobEvent.model_validate_json(store.get(layout.result_event_key(job, "succeeded")))


# ---- the real HTTP client, on loopback ---------------------------------------------------------------


@pytest.fixture
def throttling_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(429)
            self.send_header("Retry-After", "42")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_the_real_client_reads_retry_after_and_loopback_needs_the_operators_consent(throttling_server: str) -> None:
    refused = WebhookChannel(throttling_server, (SECRET,), per_job=True).send(record_for(throttling_server),
                                                                              datetime.now(UTC))
    assert refused.outcome == "failed" and "refused" in (refused.error or "")
    allowed = WebhookChannel(throttling_server, (SECRET,), per_job=True, allow_private=True)
    result = allowed.send(record_for(throttling_server), datetime.now(UTC))
    assert (result.outcome, result.status, result.retry_after_s) == ("retry", 429, 42.0)


# ---- SNS, SQS and EventBridge publishers against moto ------------------------------------------------


def receive_one(sqs: Any, url: str) -> dict[str, Any]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1)["Messages"]
    return json.loads(messages[0]["Body"])


def test_sqs_sns_and_eventbridge_publishers_deliver_the_cloudevent(moto_server, s3_bucket) -> None:
    sqs, sns, events = (moto_server.client(s) for s in ("sqs", "sns", "events"))
    urls = [sqs.create_queue(QueueName=f"{s3_bucket}-{n}")["QueueUrl"] for n in ("direct", "sns", "bus")]
    arns = [sqs.get_queue_attributes(QueueUrl=u, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"] for u in urls]
    topic = sns.create_topic(Name=f"{s3_bucket}-topic")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arns[1], Attributes={"RawMessageDelivery": "true"})
    bus = events.create_event_bus(Name=f"{s3_bucket}-bus")["EventBusArn"].rsplit("/", 1)[1]
    events.put_rule(Name=f"{s3_bucket}-r", EventBusName=bus, EventPattern=json.dumps({"source": ["dropfit"]}))
    events.put_targets(Rule=f"{s3_bucket}-r", EventBusName=bus, Targets=[{"Id": "q", "Arn": arns[2]}])
    record = record_for()
    now = datetime.now(UTC)
    for channel in (SqsChannel(sqs, urls[0]), SnsChannel(sns, topic), EventBridgeChannel(events, bus)):
        assert channel.send(record, now).outcome == "delivered"
    assert receive_one(sqs, urls[0])["id"] == event().id
    assert receive_one(sqs, urls[1])["type"] == "dropfit.job.succeeded"
    assert receive_one(sqs, urls[2])["detail"]["id"] == event().id
    assert SqsChannel(sqs, urls[0] + "-missing").send(record, now).outcome == "retry"


# ---- deliveries never hold a job's end; what is due is redelivered by every sweep ------------------------------


def test_redelivery_marks_the_record_taken_so_two_sweepers_send_it_once(folder_store: FolderStore) -> None:
    clock = Clock()
    poster = ScriptedPoster([HttpReply(503, {}), HttpReply(200, {})])
    box = outbox(folder_store, clock, inline_budget_s=0.0)
    channel = webhook(poster)
    key, record, etag = box.open(event(), channel, per_job=True)  # type: ignore[misc]
    box.deliver(key, record, etag, channel, budget_s=0.0)  # one attempt, then the outbox
    clock.now += timedelta(hours=1)
    [(due_key, due, due_etag)] = box.due()
    assert box.redeliver(due_key, due, due_etag, lambda r: channel) == 1
    assert box.redeliver(due_key, due, due_etag, lambda r: channel) == 0, "the second sweeper finds it taken"
    assert len(poster.calls) == 2 and DeliveryRecord.model_validate_json(folder_store.get(key)).state == "delivered"


def pending_record(store: FolderStore, job: str, due_at: datetime, url: str = "https://ops.example.com/all") -> str:
    """A delivery to the operator's webhook that was refused once (503, Retry-After) and is due at `due_at`."""
    opened = due_at - timedelta(seconds=10)
    box = Outbox(store, RetryPolicy(max_attempts=5, inline_budget_s=0.0), clock=lambda: opened, sleep=lambda s: None)
    refused = ScriptedPoster([HttpReply(503, {"retry-after": "10"})])
    channel = WebhookChannel(url, (SECRET,), per_job=False, poster=refused, resolver=public)
    key, record, etag = box.open(event(job), channel, per_job=False)  # type: ignore[misc]
    assert box.deliver(key, record, etag, channel, budget_s=0.0).next_attempt_at == due_at
    return key


def test_every_sweep_of_the_local_runtime_redelivers_what_is_due(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "bucket")
    poster = ScriptedPoster([HttpReply(204, {})])
    key = pending_record(store, "j1", datetime.now(UTC) - timedelta(minutes=1))
    settings = Settings(webhook_secret=SECRET, webhook_urls=("https://ops.example.com/all",))  # type: ignore[arg-type]
    notifier = build_notifier(store, settings, channels=SettingsChannels(store, settings, poster=poster,
                                                                         resolver=public))
    with LocalRuntime(Handlers(store, make_fake_registry(RunLog(tmp_path / "runs.log")), notifier)) as runtime:
        runtime.sweep()
        assert runtime.settle_deliveries(30) == 0
    final = DeliveryRecord.model_validate_json(store.get(key))
    assert final.state == "delivered" and [a.status for a in final.attempts] == [503, 204]
    assert list(store.list("work/outbox/")) == []


class SlowDns:
    """A resolver that does not answer until released (a host whose DNS times out)."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.release = threading.Event()

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.set()
        self.release.wait(120)
        return [PUBLIC]


def test_run_reports_the_job_at_its_end_while_a_slow_webhook_is_still_being_told(tmp_path: Path, capsys) -> None:
    from functions import cli
    from functions.app import build_local

    dns, poster = SlowDns(), ScriptedPoster([HttpReply(204, {})])
    settings = Settings(webhook_secret=SECRET, workers=2, lease_s=5)  # type: ignore[arg-type]
    store = FolderStore(tmp_path / "bucket")
    notifier = build_notifier(store, settings, channels=SettingsChannels(store, settings, poster=poster, resolver=dns))
    local = build_local(store.root, settings, registry=make_fake_registry(RunLog(tmp_path / "runs.log")),
                        notifier=notifier)
    spec = json.dumps({"subscribers": [{"url": "https://slow-dns.example.com/hook"}]}).encode()
    try:
        code = cli.run_job(local, "slow", (photo((200, 40, 40)), "jpg"), (photo((40, 40, 200)), "jpg"), spec,
                           timeout_s=60)
        assert code == 0 and dns.asked.is_set() and not dns.release.is_set()
        out = capsys.readouterr().out
        assert "succeeded" in out and "1 delivery to subscribers still in progress" in out
        assert local.store.head(layout.claim_key("publish", "slow")) is None, "publish holds no claim while telling"
        assert job_finished(local.store, "slow")
    finally:
        dns.release.set()
    assert notifier.settle(30) == 0
    [record] = [DeliveryRecord.model_validate_json(store.get(i.key)) for i in store.list("results/slow/_deliveries/")]
    assert record.state == "delivered" and len(poster.calls) == 1
