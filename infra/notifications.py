"""The notifier built from Settings: which subscribers an event goes to, and how links are made.

Subscribers: the operator's (`DROPFIT_WEBHOOK_URLS`, `DROPFIT_NOTIFY_SNS_TOPIC_ARN`, `..._SQS_QUEUE_URL`,
`..._EVENTBRIDGE_BUS`: trusted) and the webhooks a job names in its `job.json` (untrusted: https only, and
the SSRF guard of `infra/webhook_client.py` applies). Links: presigned GETs on S3, `file://` URIs on a
folder bucket.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from events.outbound import JobEvent
from events.webhooks import DeliveryRecord
from infra import aws
from infra.publishers import Channel, EventBridgeChannel, Poster, SnsChannel, SqsChannel, WebhookChannel
from infra.s3_store import S3Store
from infra.settings import Settings
from infra.subscribers import FanOutNotifier, Outbox, RetryPolicy
from infra.webhook_client import Resolver, system_resolver
from pipeline import layout
from pipeline.errors import InvalidInput
from pipeline.spec import parse_job_spec
from pipeline.state import load_plan
from pipeline.storage import ObjectNotFound, ObjectStore

AwsClients = Callable[[str], Any]


def linker(store: ObjectStore, settings: Settings) -> Callable[[str], str]:
    """Presigned GETs (SigV4) on S3, `file://` URIs on a folder bucket. The S3 client is made on first use."""
    expires_s = settings.presign_expiry_s
    if isinstance(store, S3Store):
        return lambda key: store.presign_get(key, expires_s)
    root = getattr(store, "root", None)
    if isinstance(root, Path):
        return lambda key: (root / key).as_uri()
    return lambda key: f"{store.bucket}/{key}"


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(max_attempts=settings.webhook_max_attempts, base_s=settings.webhook_retry_base_s,
                       cap_s=settings.webhook_retry_cap_s, inline_budget_s=settings.webhook_inline_budget_s)


class SettingsChannels:
    """`channels(event)`: every subscriber of the event, as (channel, per_job)."""

    def __init__(self, store: ObjectStore, settings: Settings, *, poster: Poster | None = None,
                 resolver: Resolver = system_resolver, aws_clients: AwsClients | None = None) -> None:
        self._store = store
        self._settings = settings
        self._poster = poster
        self._resolver = resolver
        self._aws = aws_clients or cache(
            lambda service: aws.client(service, endpoint_url=settings.s3_endpoint_url, region=settings.aws_region))

    def __call__(self, event: JobEvent) -> list[tuple[Channel, bool]]:
        s = self._settings
        channels: list[tuple[Channel, bool]] = [(self._webhook(url, per_job=False), False) for url in s.webhook_urls]
        for kind, target in (("sns", s.notify_sns_topic_arn), ("sqs", s.notify_sqs_queue_url),
                             ("eventbridge", s.notify_eventbridge_bus)):
            if target:
                channels.append((self._aws_channel(kind, target), False))
        for url in dict.fromkeys(self._job_urls(event.subject)):
            if url not in s.webhook_urls:
                channels.append((self._webhook(url, per_job=True), True))
        return channels

    def _job_urls(self, job_id: str) -> list[str]:
        """The job's webhooks: from its plan, or from its job.json when intake refused the job (a refused plan
        carries no spec, and a user whose photo was unreadable is still owed the failure)."""
        plan = load_plan(self._store, job_id)
        if plan is not None and plan.error is None:
            return [sub.url for sub in plan.spec.subscribers]
        try:
            spec = parse_job_spec(self._store.get(layout.incoming_spec_key(job_id)))
        except (ObjectNotFound, InvalidInput, layout.InvalidKey):
            return []
        return [sub.url for sub in spec.subscribers]

    def for_record(self, record: DeliveryRecord) -> Channel | None:
        if record.kind == "webhook":
            return self._webhook(record.target, per_job=record.per_job)
        return self._aws_channel(record.kind, record.target)

    def _webhook(self, url: str, *, per_job: bool) -> WebhookChannel:
        s = self._settings
        secrets = [x.get_secret_value() for x in (s.webhook_secret, s.webhook_secret_previous) if x is not None]
        return WebhookChannel(url, secrets, per_job=per_job, allow_private=s.webhook_allow_private,
                              timeout_s=s.webhook_timeout_s, poster=self._poster, resolver=self._resolver)

    def _aws_channel(self, kind: str, target: str) -> Channel:
        if kind == "sns":
            return SnsChannel(self._aws("sns"), target)
        if kind == "sqs":
            return SqsChannel(self._aws("sqs"), target)
        return EventBridgeChannel(self._aws("events"), target)


def build_notifier(store: ObjectStore, settings: Settings, *, outbox: Outbox | None = None,
                   channels: SettingsChannels | None = None) -> FanOutNotifier:
    return FanOutNotifier(store, outbox or Outbox(store, retry_policy(settings)),
                          channels or SettingsChannels(store, settings),
                          linker(store, settings), expires_s=settings.presign_expiry_s,
                          inline_budget_s=settings.webhook_inline_budget_s)


def redeliver_due(store: ObjectStore, settings: Settings, *, outbox: Outbox | None = None,
                  channels: SettingsChannels | None = None) -> int:
    """Retry every pending delivery whose time has come (the worker's and the Modal sweeper's call)."""
    channels = channels or SettingsChannels(store, settings)
    return (outbox or Outbox(store, retry_policy(settings))).redeliver_due(channels.for_record)
