"""Record real storage events from a local moto server into `tests/events/moto_*.json`.

Run from the repository root:

    .venv/bin/python tests/events/record.py

It starts `moto.server.ThreadedMotoServer` on a free local port (no network, fake credentials), creates one
bucket wired three ways, then uploads, tags and deletes one object whose key has spaces, a literal plus and
unicode (`incoming/job 1/café+ümlaut person.jpg`):

- S3 -> SQS                              (queue `dropfit-direct`)
- S3 -> SNS -> SQS, raw delivery off     (topic `dropfit-topic`, queue `dropfit-sns`)
- S3 -> EventBridge -> rule -> SQS       (bucket EventBridge notifications on, queue `dropfit-eventbridge`)

Every message received is written as the boto3 `receive_message` message dict (`moto_sqs_*.json`). The
bodies of the object-created messages are also written unwrapped, as the layer below SQS delivers them
(`moto_s3_notification.json`, `moto_sns_envelope.json`, `moto_eventbridge_created.json`). Saving the
notification configuration produces the `s3:TestEvent` files; moto also emits `ObjectTagging:Put` on every
PutObject. Re-running overwrites the files (timestamps and ids change; shapes do not).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

HERE = Path(__file__).resolve().parent
REGION = "us-east-1"
BUCKET = "dropfit-inbox"
KEY = "incoming/job 1/café+ümlaut person.jpg"
BODY = b"not really a jpeg"


def _clients(endpoint: str) -> dict:
    return {
        name: boto3.client(name, endpoint_url=endpoint, region_name=REGION)
        for name in ("s3", "sqs", "sns", "events")
    }


def _queue(sqs, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _wire(c: dict) -> dict[str, str]:
    """Create the bucket, queues, topic and rule; save the notification configuration."""
    c["s3"].create_bucket(Bucket=BUCKET)
    direct_url, direct_arn = _queue(c["sqs"], "dropfit-direct")
    sns_url, sns_arn = _queue(c["sqs"], "dropfit-sns")
    eb_url, eb_arn = _queue(c["sqs"], "dropfit-eventbridge")
    topic_arn = c["sns"].create_topic(Name="dropfit-topic")["TopicArn"]
    c["sns"].subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=sns_arn, Attributes={"RawMessageDelivery": "false"}
    )
    c["events"].put_rule(Name="dropfit-s3", EventPattern=json.dumps({"source": ["aws.s3"]}))
    c["events"].put_targets(Rule="dropfit-s3", Targets=[{"Id": "queue", "Arn": eb_arn}])
    events = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:ObjectTagging:*"]
    c["s3"].put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [{"Id": "direct", "QueueArn": direct_arn, "Events": events}],
            "TopicConfigurations": [{"Id": "sns", "TopicArn": topic_arn, "Events": events}],
            "EventBridgeConfiguration": {},
        },
    )
    return {"sqs_s3": direct_url, "sqs_sns": sns_url, "sqs_eventbridge": eb_url}


def _drain(sqs, url: str) -> list[dict]:
    messages: list[dict] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
    ).get("Messages", []):
        messages.extend(batch)
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return messages


def _kind(body: dict) -> str:
    """A short file-name suffix saying what a (possibly SNS-wrapped) message body carries."""
    if body.get("Type") == "Notification":
        body = json.loads(body["Message"])
    if body.get("Event") == "s3:TestEvent":
        return "testevent"
    if "detail-type" in body:
        return body["detail-type"].lower().replace(" ", "_")
    return body["Records"][0]["eventName"].replace(":", "_").lower()


def _write(name: str, data: dict) -> None:
    path = HERE / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(HERE.parent.parent)}")


def record() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        c = _clients(f"http://{host}:{port}")
        queues = _wire(c)
        c["s3"].put_object(Bucket=BUCKET, Key=KEY, Body=BODY)
        c["s3"].delete_object(Bucket=BUCKET, Key=KEY)
        for prefix, url in queues.items():
            for message in _drain(c["sqs"], url):
                body = json.loads(message["Body"])
                kind = _kind(body)
                _write(f"moto_{prefix}_{kind}", message)
                if kind in ("objectcreated_put", "object_created"):
                    unwrapped = {"sqs_s3": "s3_notification", "sqs_sns": "sns_envelope"}
                    _write(f"moto_{unwrapped.get(prefix, 'eventbridge_created')}", body)
    finally:
        server.stop()


if __name__ == "__main__":
    record()
