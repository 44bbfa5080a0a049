"""Contract tests: recorded inbound events (tests/events/*.json) normalize to one `ObjectEvent` shape.

`moto_*.json` are real recordings (tests/events/record.py); `aws_*.json` follow the AWS-documented shapes
(with sequencer, versionId, eventTime and a multipart etag). Both groups describe the same object,
`incoming/job 1/café+ümlaut person.jpg` in `dropfit-inbox`, but moto has no sequencer or version id, so
each group is compared within itself.
"""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote_plus

import pytest

from events.contracts import ObjectEvent
from events.normalize import InvalidEvent, normalize, normalize_sqs_message

EVENTS = Path(__file__).parent / "events"
BUCKET = "dropfit-inbox"
KEY = "incoming/job 1/café+ümlaut person.jpg"

AWS_CREATED = {  # file -> expected source (the outermost transport)
    "aws_s3_direct": "s3",
    "aws_sns_envelope": "sns",
    "aws_lambda_sns_s3": "sns",
    "aws_lambda_sqs_s3": "sqs",
    "aws_lambda_sqs_sns_s3": "sqs",
    "aws_lambda_sqs_eventbridge": "sqs",
    "aws_boto3_sqs_sns_s3": "sqs",
    "aws_eventbridge_object_created": "eventbridge",
}
MOTO_CREATED = {
    "moto_s3_notification": "s3",
    "moto_sns_envelope": "sns",
    "moto_sqs_s3_objectcreated_put": "sqs",
    "moto_sqs_sns_objectcreated_put": "sqs",
}
MOTO_EVENTBRIDGE = {"moto_eventbridge_created": "eventbridge", "moto_sqs_eventbridge_object_created": "sqs"}
SKIPPED = [
    "aws_s3_test_event",
    "aws_s3_object_removed",
    "aws_eventbridge_object_deleted",
    "moto_sqs_s3_testevent",
    "moto_sqs_s3_objecttagging_put",
    "moto_sqs_s3_objectremoved_delete",
    "moto_sqs_sns_testevent",
    "moto_sqs_sns_objecttagging_put",
    "moto_sqs_sns_objectremoved_delete",
    "moto_sqs_eventbridge_object_tags_added",
    "moto_sqs_eventbridge_object_deleted",
]

AWS_EXPECTED = ObjectEvent(
    bucket=BUCKET,
    key=KEY,
    etag="6a5fd1e1b3c4e7a5f0d2b8c9e1f3a4b5-2",
    size=10485761,
    sequencer="0062E99A88DC407460",
    version="096fKKXTRTtl3on89fVO.nfljtsv6qko",
    source="s3",
)
MOTO_BODY = b"not really a jpeg"  # what record.py uploads
MOTO_EXPECTED = ObjectEvent(
    bucket=BUCKET, key=KEY, etag=hashlib.md5(MOTO_BODY).hexdigest(), size=len(MOTO_BODY), source="s3"
)


def load(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))


def only(events: list[ObjectEvent]) -> ObjectEvent:
    assert len(events) == 1, events
    return events[0]


def s3_record(key: str = "a.jpg", event_name: str = "ObjectCreated:Put", **obj: object) -> dict:
    return {
        "eventSource": "aws:s3",
        "eventName": event_name,
        "s3": {"bucket": {"name": BUCKET}, "object": {"key": key, "size": 1, "eTag": "abc", **obj}},
    }


def eventbridge(key: str = "a.jpg", detail_type: str = "Object Created", **obj: object) -> dict:
    doc = load("aws_eventbridge_object_created")
    doc["detail-type"] = detail_type
    doc["detail"]["object"].update(key=key, **obj)
    return doc


def in_sqs(body: dict) -> dict:
    return {"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": json.dumps(body)}


def test_every_sample_file_is_covered() -> None:
    named = {*AWS_CREATED, *MOTO_CREATED, *MOTO_EVENTBRIDGE, *SKIPPED, "folder_event"}
    assert {p.stem for p in EVENTS.glob("*.json")} == named


@pytest.mark.parametrize("name", sorted(AWS_CREATED))
def test_aws_documented_shapes_give_the_same_object(name: str) -> None:
    event = only(normalize(load(name)))
    assert event.same_object(AWS_EXPECTED), event
    assert event.source == AWS_CREATED[name]
    assert event.event_time is not None
    assert event.event_time.replace(microsecond=0) == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("name", sorted(MOTO_CREATED))
def test_moto_recordings_give_the_same_object(name: str) -> None:
    event = only(normalize(load(name)))
    assert event.same_object(MOTO_EXPECTED), event
    assert (event.sequencer, event.version) == (None, None)  # moto records have neither
    assert event.source == MOTO_CREATED[name]
    assert event.event_time is not None and event.event_time.tzinfo is not None


@pytest.mark.parametrize("name", sorted(MOTO_EVENTBRIDGE))
def test_moto_eventbridge_recordings(name: str) -> None:
    """moto writes EventBridge keys raw (AWS parsers expect them encoded): a literal `+` becomes a space."""
    assert load("moto_eventbridge_created")["detail"]["object"]["key"] == KEY  # recorded unencoded
    event = only(normalize(load(name)))
    assert event.key == unquote_plus(KEY) == "incoming/job 1/café ümlaut person.jpg"
    assert (event.bucket, event.etag, event.size) == (BUCKET, MOTO_EXPECTED.etag, MOTO_EXPECTED.size)
    assert event.version is None  # moto sends version-id "null"
    assert event.source == MOTO_EVENTBRIDGE[name]


@pytest.mark.parametrize("name", SKIPPED)
def test_non_created_events_are_skipped(name: str) -> None:
    assert normalize(load(name)) == []


@pytest.mark.parametrize(
    "event_name",
    [
        "ObjectRemoved:Delete",
        "ObjectTagging:Put",
        "ObjectAcl:Put",
        "ObjectRestore:Completed",
        "LifecycleExpiration:Delete",
        "LifecycleTransition",
        "IntelligentTiering",
        "s3:ObjectRemoved:Delete",
    ],
)
def test_skipped_s3_event_names(event_name: str) -> None:
    assert normalize({"Records": [s3_record(event_name=event_name)]}) == []


@pytest.mark.parametrize(
    "detail_type",
    ["Object Deleted", "Object Tags Added", "Object ACL Updated", "Object Restore Completed",
     "Object Storage Class Changed", "Object Access Tier Changed"],
)  # fmt: skip
def test_skipped_eventbridge_detail_types(detail_type: str) -> None:
    assert normalize(eventbridge(detail_type=detail_type)) == []


def test_sns_subscription_confirmation_is_skipped() -> None:
    assert normalize({"Type": "SubscriptionConfirmation", "Message": "You have chosen to subscribe"}) == []


KEYS = [
    ("my+photo.jpg", "my photo.jpg"),
    ("c%2B%2B+guide.jpg", "c++ guide.jpg"),
    ("a%2Bb+c.jpg", "a+b c.jpg"),
    ("incoming%2Fjob+1%2Fa.jpg", "incoming/job 1/a.jpg"),  # moto encodes '/'
    ("incoming/job+1/a.jpg", "incoming/job 1/a.jpg"),  # AWS leaves '/' alone
    ("caf%C3%A9+%C3%BCmlaut.jpg", "café ümlaut.jpg"),
    ("100%25+real.jpg", "100% real.jpg"),
    ("twice%2520encoded.jpg", "twice%20encoded.jpg"),  # decoded exactly once
]


@pytest.mark.parametrize(("encoded", "decoded"), KEYS)
def test_s3_notification_keys_decode_once(encoded: str, decoded: str) -> None:
    direct = {"Records": [s3_record(encoded)]}
    assert only(normalize(direct)).key == decoded
    assert only(normalize(in_sqs(direct))).key == decoded


@pytest.mark.parametrize(("encoded", "decoded"), KEYS)
def test_eventbridge_keys_decode_like_notifications(encoded: str, decoded: str) -> None:
    assert only(normalize(eventbridge(encoded))).key == decoded


def test_direct_notification_with_two_records_gives_two_events_in_order() -> None:
    doc = {"Records": [s3_record("first.jpg"), s3_record("second+photo.jpg")]}
    assert [e.key for e in normalize(doc)] == ["first.jpg", "second photo.jpg"]


def test_mixed_records_keep_only_created() -> None:
    doc = {"Records": [s3_record("gone.jpg", "ObjectRemoved:Delete"), s3_record("new.jpg")]}
    assert [e.key for e in normalize(doc)] == ["new.jpg"]


def test_version_null_is_absent() -> None:
    assert only(normalize({"Records": [s3_record(versionId="null")]})).version is None
    assert only(normalize(eventbridge(**{"version-id": "null"}))).version is None
    assert only(normalize({"Records": [s3_record(versionId="v1")]})).version == "v1"


def test_quoted_etags_are_unquoted() -> None:
    assert only(normalize({"Records": [s3_record(eTag='"abc-2"')]})).etag == "abc-2"
    assert only(normalize(eventbridge(etag='"def"'))).etag == "def"


def test_optional_fields_may_be_missing() -> None:
    record = s3_record()
    record["s3"]["object"] = {"key": "a.jpg"}
    event = only(normalize({"Records": [record]}))
    assert (event.etag, event.size, event.sequencer, event.version, event.event_time) == (None,) * 5


def test_str_bytes_and_dict_payloads_agree() -> None:
    doc = load("aws_lambda_sqs_sns_s3")
    text = json.dumps(doc)
    assert normalize(doc) == normalize(text) == normalize(text.encode("utf-8"))


def test_normalize_sqs_message_matches_normalize() -> None:
    message = load("moto_sqs_s3_objectcreated_put")
    assert normalize_sqs_message(message) == normalize(message)
    assert only(normalize_sqs_message(message)).source == "sqs"


def test_folder_event_round_trips() -> None:
    doc = load("folder_event")
    event = only(normalize(doc))
    assert event == ObjectEvent.model_validate(doc)
    assert (event.source, event.key, event.bucket) == ("folder", KEY, BUCKET)
    assert normalize(event.model_dump_json()) == [event]
    assert only(normalize(in_sqs(doc))).source == "sqs"  # a transport around it names the source


def test_payload_is_not_mutated() -> None:
    doc = load("aws_lambda_sqs_s3")
    before = copy.deepcopy(doc)
    normalize(doc)
    assert doc == before


def _nested(levels: int) -> dict:
    doc: dict = {"Records": [s3_record()]}
    for _ in range(levels):
        doc = in_sqs(doc)
    return doc


GARBAGE = [
    (b"\xff\xfe\x00", "not UTF-8"),
    ("not json at all", "not JSON"),
    ("[1, 2]", "must be a JSON object"),
    ({"hello": "world"}, "unrecognized event"),
    ({"Records": "nope"}, "'Records' must be a list"),
    ({"Records": [{"eventSource": "aws:kinesis", "kinesis": {}}]}, "not a valid S3 notification record"),
    ({"Records": [s3_record(key="")]}, "s3.object.key"),
    ({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {"key": "a"}}}]}, "s3.bucket"),
    ({"MessageId": "m", "ReceiptHandle": "r", "Body": "{oops"}, "not JSON"),
    ({"Records": [{"eventSource": "aws:sqs", "body": '{"what": 1}'}]}, "unrecognized event"),
    ({"Records": [{"EventSource": "aws:sns", "Sns": {"Type": "Notification"}}]}, "Sns.Message"),
    ({"Type": "Bogus", "Message": "{}"}, "expected 'Notification'"),
    ({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification"}, "'aws.s3'"),
    (
        {"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {"name": "b"}}},
        "detail.object",
    ),
    ({**ObjectEvent(bucket="b", key="k", source="folder").model_dump(mode="json"), "x": 1}, "ObjectEvent"),
    (_nested(6), "levels deep"),
]


@pytest.mark.parametrize(("payload", "fragment"), GARBAGE)
def test_garbage_raises_invalid_event_with_a_readable_message(payload: object, fragment: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        normalize(payload)  # type: ignore[arg-type]
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_reasonable_nesting_is_accepted() -> None:
    assert only(normalize(_nested(3))).source == "sqs"
