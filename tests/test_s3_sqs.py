"""The S3 route against moto's server on loopback: a real bucket with S3 -> SQS notifications;
uploading the two images and draining the queue runs the job through the router with the S3 store.
Duplicates (multipart's double event, redelivery) run no phase twice; a poison message ends in the DLQ;
in Modal mode a message whose spawn failed stays for redelivery."""

from __future__ import annotations

import io
import json
import threading
import time
from typing import Any

import pytest
from stuck import STUCK_CM, gated

from events.outbound import StoreEventLog
from fakes import RunLog, make_fake_registry, photo
from functions.app import build_local
from functions.dispatch import SpawnDispatcher
from functions.handlers import Handlers
from functions.runtime import LocalRuntime
from functions.sqs_worker import drain
from infra.s3_store import S3Store
from infra.settings import Settings
from pipeline import layout
from pipeline.manifests import ResultManifest
from pipeline.page.publish import is_page_file
from pipeline.phases import PHASES
from pipeline.state import read_model


@pytest.fixture
def wired(moto_server, s3_client, s3_bucket, tmp_path) -> dict[str, Any]:
    sqs = moto_server.client("sqs")
    dlq_url = sqs.create_queue(QueueName=f"{s3_bucket}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(QueueName=f"{s3_bucket}-events", Attributes={
        "VisibilityTimeout": "1",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
    })["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rules = [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
              "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}}
             for prefix in ("incoming/", "catalog/", "work/", "results/")]
    s3_client.put_bucket_notification_configuration(
        Bucket=s3_bucket, NotificationConfiguration={"QueueConfigurations": rules})
    log = RunLog(tmp_path / "runs.log")
    store = S3Store(s3_client, s3_bucket)
    handlers = Handlers(store, make_fake_registry(log), StoreEventLog(store), lease_s=5)
    return {"sqs": sqs, "queue_url": queue_url, "dlq_url": dlq_url, "store": store, "log": log,
            "handlers": handlers, "s3": s3_client, "bucket": s3_bucket}


def test_upload_two_images_and_drain_runs_the_job_on_s3(wired: dict[str, Any]) -> None:
    s3, bucket, store = wired["s3"], wired["bucket"], wired["store"]
    s3.put_object(Bucket=bucket, Key="incoming/job 1/garment.jpg", Body=photo((40, 40, 200)))
    s3.put_object(Bucket=bucket, Key="incoming/job 1/person.jpg", Body=photo((200, 40, 40)))
    with LocalRuntime(wired["handlers"], workers=2) as runtime:
        stats = drain(wired["sqs"], wired["queue_url"], runtime)
    manifest = read_model(store, layout.result_manifest_key("job 1"), ResultManifest)
    assert manifest is not None and len([f for f in manifest.files if not is_page_file(f.name)]) == 9
    assert "index.html" in {f.name for f in manifest.files}
    assert [wired["log"].count(p.name) for p in PHASES] == [1, 1, 1, 1]
    assert stats.events >= 6 and stats.kept == 0 and stats.errors == []
    event = json.loads(store.get("results/job 1/_events/succeeded.json"))
    assert event["data"]["bucket"] == bucket


def test_multipart_double_event_and_redelivery_run_no_phase_twice(wired: dict[str, Any]) -> None:
    s3, bucket, sqs = wired["s3"], wired["bucket"], wired["sqs"]
    from boto3.s3.transfer import TransferConfig

    big = photo((200, 40, 40), size=(2400, 3200), fmt="PNG")  # a multipart upload: moto emits two events
    config = TransferConfig(multipart_threshold=1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3.upload_fileobj(io.BytesIO(big + b""), bucket, "incoming/mp/person.png", Config=config)
    s3.put_object(Bucket=bucket, Key="incoming/mp/garment.jpg", Body=photo((40, 40, 200)))
    copies = sqs.receive_message(QueueUrl=wired["queue_url"], MaxNumberOfMessages=10, VisibilityTimeout=0)
    for message in copies.get("Messages", []):  # the same notifications delivered a second time
        sqs.send_message(QueueUrl=wired["queue_url"], MessageBody=message["Body"])
    with LocalRuntime(wired["handlers"], workers=2) as runtime:
        drain(wired["sqs"], wired["queue_url"], runtime)
    assert read_model(wired["store"], layout.result_manifest_key("mp"), ResultManifest) is not None
    assert [wired["log"].count(p.name) for p in PHASES] == [1, 1, 1, 1]


def test_poison_message_stays_and_ends_in_the_dead_letter_queue(wired: dict[str, Any]) -> None:
    sqs = wired["sqs"]
    sqs.send_message(QueueUrl=wired["queue_url"], MessageBody="this is not an event")
    with LocalRuntime(wired["handlers"], workers=1) as runtime:
        for _ in range(8):
            stats = drain(sqs, wired["queue_url"], runtime, wait_s=1, idle_polls=1, visibility_s=1)
            if sqs.get_queue_attributes(QueueUrl=wired["dlq_url"], AttributeNames=["ApproximateNumberOfMessages"])[
                    "Attributes"]["ApproximateNumberOfMessages"] != "0":
                break
    dead = sqs.receive_message(QueueUrl=wired["dlq_url"], MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in dead] == ["this is not an event"]
    assert stats.deleted == 0


# ---- the Modal mode of the dispatcher seam: spawns instead of local runs ----------------------------


class FlakySpawner:
    """Fails the first `failures` spawns (Modal unreachable), then records what it would start."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.started: list[tuple[str, str, str]] = []

    def __call__(self, step: str, subject: str, bucket: str) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("modal is unreachable")
        self.started.append((step, subject, bucket))


def test_a_message_whose_spawn_failed_stays_and_is_dispatched_on_redelivery(wired: dict[str, Any]) -> None:
    s3, bucket, sqs = wired["s3"], wired["bucket"], wired["sqs"]
    s3.put_object(Bucket=bucket, Key="incoming/sp/person.jpg", Body=photo((200, 40, 40)))
    s3.put_object(Bucket=bucket, Key="incoming/sp/garment.jpg", Body=photo((40, 40, 200)))
    spawner = FlakySpawner(failures=1)
    dispatcher = SpawnDispatcher(wired["store"], {}, spawner, dedupe_s=0)
    first = drain(sqs, wired["queue_url"], dispatcher, wait_s=0, idle_polls=1, visibility_s=1)
    assert first.kept == 1 and first.deleted == first.received - 1 and "unreachable" in first.errors[0]
    time.sleep(1.1)  # the visibility timeout: SQS redelivers the kept message
    second = drain(sqs, wired["queue_url"], dispatcher, wait_s=1, idle_polls=1, visibility_s=1)
    assert second.received == 1 and second.deleted == 1 and second.kept == 0
    assert spawner.started == [("intake", "sp", bucket)] * 2, "the garment's event, then the person's again"


def test_events_of_another_bucket_are_dropped_not_routed(wired: dict[str, Any]) -> None:
    foreign = {"Records": [{"eventName": "ObjectCreated:Put",
                            "s3": {"bucket": {"name": "someone-else"}, "object": {"key": "incoming/x/person.jpg"}}}]}
    wired["sqs"].send_message(QueueUrl=wired["queue_url"], MessageBody=json.dumps(foreign))
    spawner = FlakySpawner(failures=0)
    stats = drain(wired["sqs"], wired["queue_url"], SpawnDispatcher(wired["store"], {}, spawner), wait_s=0,
                  idle_polls=1)
    assert stats.events == 1 and stats.kept == 0 and stats.tasks == 0 and spawner.started == []


# ---- reading goes on while phases run --------------------------------------------------------------------


class FakeSqs:
    """An SQS queue in memory: each message is handed out once; `emptied` is set when none is left."""

    def __init__(self, bodies: list[str]) -> None:
        self.waiting = [{"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": b} for i, b in enumerate(bodies)]
        self.deleted: list[str] = []
        self.emptied = threading.Event()

    def receive_message(self, *, MaxNumberOfMessages: int, WaitTimeSeconds: int, **_: Any) -> dict[str, Any]:  # noqa: N803 - boto3's names
        batch, self.waiting = self.waiting[:MaxNumberOfMessages], self.waiting[MaxNumberOfMessages:]
        if not self.waiting:
            self.emptied.set()
        if not batch:
            time.sleep(min(WaitTimeSeconds, 0.05))
        return {"Messages": batch} if batch else {}

    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> None:  # noqa: N803 - boto3's names
        self.deleted.append(ReceiptHandle)


def test_the_drain_keeps_reading_while_a_phase_runs_and_deletes_each_message_once_its_work_is_done(
        tmp_path) -> None:
    """A duplicate storm: 60 copies of one event whose task is a phase run in hand. The drain used to wait for
    the runtime to be idle after every 10 messages (one batch per phase run); it reads on now, and deletes the
    copies once the run they asked for has ended."""
    gate, started = threading.Event(), threading.Event()
    local = build_local(tmp_path / "b", Settings(workers=1, lease_s=5),
                        registry=gated(RunLog(tmp_path / "runs.log"), "avatar", gate, started))
    with local.runtime:
        try:
            local.store.put(layout.incoming_spec_key("storm"), json.dumps({"person": {"height_cm": STUCK_CM}}).encode())
            local.store.put(layout.incoming_image_key("storm", "person", "jpg"), photo((200, 40, 40)))
            local.store.put(layout.incoming_image_key("storm", "garment", "jpg"), photo((40, 40, 200)))
            assert started.wait(30)
            event = local.store.event_for(layout.plan_key("storm"))
            assert event is not None
            sqs = FakeSqs([json.dumps(event.model_copy(update={"source": "sqs"}).model_dump(mode="json"))] * 60)
            stats: dict[str, Any] = {}
            reader = threading.Thread(target=lambda: stats.update(drain=drain(sqs, "q", local.runtime, wait_s=0,
                                                                              idle_polls=1)))
            reader.start()
            assert sqs.emptied.wait(30), "the drain stopped reading while the phase ran"
            assert not gate.is_set() and sqs.deleted == [], "nothing deleted before its work was done"
            gate.set()
            reader.join(60)
        finally:
            gate.set()
    assert stats["drain"].received == 60 and sorted(sqs.deleted) == sorted(f"r{i}" for i in range(60))
