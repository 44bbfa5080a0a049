"""Turn every inbound storage event into zero or more `ObjectEvent`s.

Accepted shapes (a `dict`, or its JSON as `str`/`bytes`):

- S3 notification `{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": ...}]}`;
- SQS: a boto3 `receive_message` message (`Body`) or a Lambda SQS event (`Records[].body`);
- SNS: an envelope `{"Type": "Notification", "Message": "<json>"}` or a Lambda SNS event (`Records[].Sns`);
- EventBridge `{"source": "aws.s3", "detail-type": "Object Created", "detail": ...}`;
- our own `ObjectEvent.model_dump(mode="json")` (the local folder watcher's events).

The wrappers nest (S3 -> SNS -> SQS, S3 -> EventBridge -> SQS). Only object-created events come out:
`s3:TestEvent`, removals, tagging, ACL, restore, lifecycle and the other EventBridge detail types give `[]`.
Anything else (not JSON, an unknown shape, a record without bucket or key) raises `InvalidEvent`.

`source` is the OUTERMOST transport: an event read from SQS is "sqs" whatever it carried (S3, SNS or
EventBridge); "sns", "eventbridge" and "s3" appear only when that wrapper was handed to us directly. Our own
serialized events keep their `source` unless a transport wrapped them.

Keys are decoded exactly once, here, with `urllib.parse.unquote_plus` (space is `+`, a literal `+` is `%2B`,
moto also writes `/` as `%2F`). EventBridge keys: the AWS documentation does not say whether
`detail.object.key` is URL-encoded (its samples are plain `example-key`). AWS-maintained parsers decode it
like a notification key (Powertools for Python `S3EventBridgeNotificationObject.key` applies
`unquote_plus`; OpenSearch Data Prepper `getUrlDecodedKey`), while a community fix (aws-solutions-library-
samples/guidance-for-medialake-on-aws PR #21, not merged) reports them unencoded. We follow the AWS-maintained
parsers and decode them the same way. moto sends EventBridge keys raw, so under moto a key holding a literal
`+` or `%` decodes differently on this route (tests/test_normalize.py pins that difference).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import unquote_plus

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from events.contracts import EventSource, ObjectEvent

_MAX_DEPTH = 4  # S3 -> SNS -> SQS is three layers; deeper nesting is not a real delivery
_SKIPPED_SNS_TYPES = {"SubscriptionConfirmation", "UnsubscribeConfirmation"}


class InvalidEvent(ValueError):
    """A payload that is none of the accepted shapes: never retried, sent to a dead-letter queue."""


class _Inbound(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class S3Bucket(_Inbound):
    name: str = Field(min_length=1)


class S3Object(_Inbound):
    key: str = Field(min_length=1)
    size: int | None = None
    etag: str | None = Field(None, validation_alias=AliasChoices("eTag", "etag"))
    version_id: str | None = Field(None, validation_alias=AliasChoices("versionId", "version-id"))
    sequencer: str | None = None


class S3Entity(_Inbound):
    bucket: S3Bucket
    obj: S3Object = Field(alias="object")


class S3Record(_Inbound):
    """One record of an S3 event notification."""

    event_name: str = Field(alias="eventName")
    event_time: datetime | None = Field(None, alias="eventTime")
    s3: S3Entity


class SqsEnvelope(_Inbound):
    """A boto3 message (`Body`) or a Lambda SQS record (`body`)."""

    body: str = Field(validation_alias=AliasChoices("Body", "body"))


class SnsEnvelope(_Inbound):
    type: str = Field(alias="Type")
    message: str = Field(alias="Message")


class SnsRecord(_Inbound):
    sns: SnsEnvelope = Field(alias="Sns")


class EventBridgeDetail(_Inbound):
    bucket: S3Bucket
    obj: S3Object = Field(alias="object")


class EventBridgeS3Event(_Inbound):
    source: str
    detail_type: str = Field(alias="detail-type")
    time: datetime | None = None
    detail: EventBridgeDetail


_M = TypeVar("_M", bound=BaseModel)


def normalize(payload: dict | str | bytes) -> list[ObjectEvent]:
    """All object-created events in one inbound payload; `InvalidEvent` when it cannot be parsed."""
    return _dispatch(_load(payload), depth=0)


def normalize_sqs_message(message: dict) -> list[ObjectEvent]:
    """Same as `normalize`, for a message dict from boto3 `sqs.receive_message(...)["Messages"]`."""
    return normalize(message)


def _load(payload: Any) -> dict:
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InvalidEvent("event payload is not UTF-8 text") from err
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except json.JSONDecodeError as err:
            raise InvalidEvent(f"event payload is not JSON: {err} (got {payload[:80]!r})") from err
    if not isinstance(payload, dict):
        raise InvalidEvent(f"event payload must be a JSON object, got {type(payload).__name__}")
    return payload


def _dispatch(doc: dict, depth: int) -> list[ObjectEvent]:
    if depth > _MAX_DEPTH:
        raise InvalidEvent(f"event is wrapped more than {_MAX_DEPTH} levels deep")
    if "Records" in doc:
        return _from_records(doc["Records"], depth)
    if doc.get("Event") == "s3:TestEvent":
        return []
    if "Type" in doc and "Message" in doc:
        return _from_sns(_validate(SnsEnvelope, doc, "SNS envelope"), depth)
    if "Body" in doc:
        return _from_sqs(doc, depth)
    if "detail-type" in doc:
        return _from_eventbridge(doc)
    if "schema_version" in doc:
        return [_validate(ObjectEvent, doc, "dropfit ObjectEvent")]
    raise InvalidEvent(
        "unrecognized event: expected an S3 notification ('Records'), an SQS message ('Body'), "
        "an SNS envelope ('Type'+'Message'), an EventBridge event ('detail-type') or a dropfit "
        f"ObjectEvent ('schema_version'); got keys {sorted(doc)[:8]}"
    )


def _from_records(records: Any, depth: int) -> list[ObjectEvent]:
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise InvalidEvent("'Records' must be a list of JSON objects")
    events: list[ObjectEvent] = []
    for record in records:
        origin = record.get("eventSource") or record.get("EventSource")
        if origin == "aws:sqs":
            events += _from_sqs(record, depth)
        elif origin == "aws:sns":
            events += _from_sns(_validate(SnsRecord, record, "Lambda SNS record").sns, depth)
        else:
            events += _from_s3_record(record)
    return events


def _from_s3_record(record: dict) -> list[ObjectEvent]:
    parsed = _validate(S3Record, record, "S3 notification record")
    if not parsed.event_name.removeprefix("s3:").startswith("ObjectCreated:"):
        return []
    return [_object_event(parsed.s3.bucket, parsed.s3.obj, parsed.event_time, "s3")]


def _from_sqs(message: dict, depth: int) -> list[ObjectEvent]:
    body = _validate(SqsEnvelope, message, "SQS message").body
    return _restamp(_dispatch(_load(body), depth + 1), "sqs")


def _from_sns(envelope: SnsEnvelope, depth: int) -> list[ObjectEvent]:
    if envelope.type in _SKIPPED_SNS_TYPES:
        return []
    if envelope.type != "Notification":
        raise InvalidEvent(f"SNS message of type {envelope.type!r}, expected 'Notification'")
    return _restamp(_dispatch(_load(envelope.message), depth + 1), "sns")


def _from_eventbridge(doc: dict) -> list[ObjectEvent]:
    if doc.get("source") != "aws.s3":
        raise InvalidEvent(f"EventBridge event from {doc.get('source')!r}, expected source 'aws.s3'")
    if doc.get("detail-type") != "Object Created":
        return []
    parsed = _validate(EventBridgeS3Event, doc, "EventBridge S3 event")
    return [_object_event(parsed.detail.bucket, parsed.detail.obj, parsed.time, "eventbridge")]


def _object_event(
    bucket: S3Bucket, obj: S3Object, event_time: datetime | None, source: EventSource
) -> ObjectEvent:
    return ObjectEvent(
        bucket=bucket.name,
        key=unquote_plus(obj.key),
        etag=obj.etag.strip('"') if obj.etag else None,
        size=obj.size,
        sequencer=obj.sequencer or None,
        version=None if obj.version_id in (None, "", "null") else obj.version_id,
        event_time=event_time,
        source=source,
    )


def _restamp(events: list[ObjectEvent], source: EventSource) -> list[ObjectEvent]:
    """The outermost transport names the source (see the module docstring)."""
    return [e.model_copy(update={"source": source}) for e in events]


def _validate(model: type[_M], data: dict, what: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise InvalidEvent(f"not a valid {what}: {_summary(err)}") from err


def _summary(err: ValidationError, limit: int = 3) -> str:
    parts: list[str] = []
    for e in err.errors()[:limit]:
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)
