"""The subscriber channels: a signed webhook, an SNS topic, an SQS queue, an EventBridge bus.

Each sends one delivery record's body (the CloudEvent, structured JSON) once and says what happened; the
outbox (`infra/subscribers.py`) decides about retries and records every attempt.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from events.webhooks import ChannelKind, DeliveryRecord, SendResult, classify, parse_retry_after, sign_headers
from infra.webhook_client import HttpPoster, HttpReply, RefusedUrl, Resolver, Target, resolve_target, system_resolver


class Channel(Protocol):
    kind: ChannelKind
    target: str

    def send(self, record: DeliveryRecord, now: datetime) -> SendResult: ...


class Poster(Protocol):
    def post(self, target: Target, body: bytes, headers: dict[str, str], timeout: float) -> HttpReply: ...


class WebhookChannel:
    kind: ChannelKind = "webhook"

    def __init__(self, url: str, secrets: Sequence[str], *, per_job: bool, allow_private: bool = False,
                 timeout_s: float = 10.0, poster: Poster | None = None, resolver: Resolver = system_resolver) -> None:
        self.target = url
        self._secrets = tuple(secrets)
        self._guard = per_job
        self._allow_private = allow_private
        self._timeout = timeout_s
        self._poster = poster or HttpPoster()
        self._resolver = resolver

    def send(self, record: DeliveryRecord, now: datetime) -> SendResult:
        if not self._secrets:
            return SendResult("failed", error="no signing secret is configured (set DROPFIT_WEBHOOK_SECRET)")
        try:
            target = resolve_target(self.target, guard=self._guard, allow_private=self._allow_private,
                                    resolver=self._resolver)
        except RefusedUrl as exc:
            return SendResult("failed", error=f"refused: {exc}")
        except ConnectionError as exc:
            return SendResult("retry", error=str(exc))
        headers = sign_headers(record.message_id, now, record.body, self._secrets)
        try:
            reply = self._poster.post(target, record.body.encode(), headers, self._timeout)
        except (OSError, http.client.HTTPException) as exc:
            return SendResult("retry", error=f"{type(exc).__name__}: {exc}")
        outcome = classify(reply.status)
        retry_after = parse_retry_after(reply.headers.get("retry-after"), now) if outcome == "retry" else None
        error = None if outcome == "delivered" else f"HTTP {reply.status}"
        return SendResult(outcome, status=reply.status, error=error, retry_after_s=retry_after)


def _aws_send(call: Any, **request: Any) -> tuple[SendResult, dict[str, Any]]:
    try:
        return SendResult("delivered", status=200), call(**request)
    except ClientError as exc:
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) or None
        return SendResult("retry", status=status, error=f"{exc.response.get('Error', {}).get('Code')}: {exc}"), {}
    except BotoCoreError as exc:
        return SendResult("retry", error=f"{type(exc).__name__}: {exc}"), {}


class SnsChannel:
    kind: ChannelKind = "sns"

    def __init__(self, client: Any, topic_arn: str) -> None:
        self._client = client
        self.target = topic_arn

    def send(self, record: DeliveryRecord, now: datetime) -> SendResult:
        attributes = {"type": {"DataType": "String", "StringValue": record.event_type}}
        result, _ = _aws_send(self._client.publish, TopicArn=self.target, Message=record.body,
                              MessageAttributes=attributes)
        return result


class SqsChannel:
    kind: ChannelKind = "sqs"

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self.target = queue_url

    def send(self, record: DeliveryRecord, now: datetime) -> SendResult:
        attributes = {"type": {"DataType": "String", "StringValue": record.event_type}}
        result, _ = _aws_send(self._client.send_message, QueueUrl=self.target, MessageBody=record.body,
                              MessageAttributes=attributes)
        return result


class EventBridgeChannel:
    kind: ChannelKind = "eventbridge"

    def __init__(self, client: Any, bus_name: str) -> None:
        self._client = client
        self.target = bus_name

    def send(self, record: DeliveryRecord, now: datetime) -> SendResult:
        entry = {"Source": "dropfit", "DetailType": record.event_type, "Detail": record.body,
                 "EventBusName": self.target, "Resources": []}
        result, reply = _aws_send(self._client.put_events, Entries=[entry])
        if result.outcome == "delivered" and reply.get("FailedEntryCount"):
            failed = reply.get("Entries", [{}])[0]
            return SendResult("retry", error=json.dumps({k: failed.get(k) for k in ("ErrorCode", "ErrorMessage")}))
        return result
