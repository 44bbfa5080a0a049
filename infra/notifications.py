"""The notifier built from Settings: which subscribers an event goes to, and how links are made.

Subscribers: the operator's (`DROPFIT_WEBHOOK_URLS`, `DROPFIT_NOTIFY` as "kind:target" entries, and the older
`DROPFIT_NOTIFY_SNS_TOPIC_ARN`, `..._SQS_QUEUE_URL`, `..._EVENTBRIDGE_BUS`: trusted) and the webhooks a job names
in its `job.json` (untrusted: https only, and the SSRF guard of `infra/webhook_client.py` applies). Links:
presigned GETs on S3, `file://` URIs on a folder bucket.

`CHANNEL_KINDS` is the one declaration of each subscriber kind: its name (what delivery records store) and how
a channel of it is made for a target. A kind nobody declared is an error when the channels are built (a setting
naming it) or a failed delivery saying so (a record of it), never another kind's channel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from events.outbound import BATCH_SUBJECT_PREFIX, JobEvent
from events.webhooks import DeliveryRecord
from infra import aws
from infra.publishers import Channel, EventBridgeChannel, Poster, SnsChannel, SqsChannel, WebhookChannel
from infra.s3_store import S3Store
from infra.settings import Settings
from infra.subscribers import DeliveryPool, FanOutNotifier, Outbox, RetryPolicy
from infra.webhook_client import Resolver, system_resolver
from pipeline import layout
from pipeline.errors import InvalidInput
from pipeline.intake import parse_batch_spec
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


class ChannelEnv(Protocol):
    """What a kind's maker may use: the settings, AWS clients, and the signed webhook the settings configure."""

    @property
    def settings(self) -> Settings: ...

    def aws(self, service: str) -> Any: ...

    def webhook(self, url: str, *, per_job: bool) -> WebhookChannel: ...


ChannelMaker = Callable[[ChannelEnv, str, bool], Channel]  # (env, target, per_job) -> the channel


@dataclass(frozen=True)
class ChannelKinds:
    """Subscriber kinds by name; a duplicate name is an error when the table is built."""

    makers: tuple[tuple[str, ChannelMaker], ...]

    def __post_init__(self) -> None:
        names = [name for name, _ in self.makers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"subscriber kinds declared twice: {duplicates}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.makers)

    def maker(self, kind: str) -> ChannelMaker:
        for name, make in self.makers:
            if name == kind:
                return make
        raise ValueError(f"unknown subscriber kind {kind!r}: use one of {', '.join(self.names)} "
                         "(a new kind is declared in infra/notifications.py: CHANNEL_KINDS)")

    def with_kind(self, name: str, make: ChannelMaker) -> ChannelKinds:
        return ChannelKinds((*self.makers, (name, make)))


CHANNEL_KINDS = ChannelKinds((
    ("webhook", lambda env, target, per_job: env.webhook(target, per_job=per_job)),
    ("sns", lambda env, target, per_job: SnsChannel(env.aws("sns"), target)),
    ("sqs", lambda env, target, per_job: SqsChannel(env.aws("sqs"), target)),
    ("eventbridge", lambda env, target, per_job: EventBridgeChannel(env.aws("events"), target)),
))


def operator_targets(settings: Settings) -> list[tuple[str, str]]:
    """The operator's (kind, target) subscribers besides the webhooks, in settings order, without repeats."""
    legacy = [("sns", settings.notify_sns_topic_arn), ("sqs", settings.notify_sqs_queue_url),
              ("eventbridge", settings.notify_eventbridge_bus)]
    entries = [(kind, target) for kind, target in legacy if target]
    entries += [(kind, target) for kind, _, target in (entry.partition(":") for entry in settings.notify)]
    return list(dict.fromkeys(entries))


class SettingsChannels:
    """`channels(event)`: every subscriber of the event, as (channel, per_job)."""

    def __init__(self, store: ObjectStore, settings: Settings, *, poster: Poster | None = None,
                 resolver: Resolver = system_resolver, aws_clients: AwsClients | None = None,
                 kinds: ChannelKinds = CHANNEL_KINDS) -> None:
        self._store = store
        self.settings = settings
        self._poster = poster
        self._resolver = resolver
        self._kinds = kinds
        self._aws = aws_clients or cache(
            lambda service: aws.client(service, endpoint_url=settings.s3_endpoint_url, region=settings.aws_region))
        self._targets = operator_targets(settings)
        for kind, _ in self._targets:
            kinds.maker(kind)  # an unknown kind in the settings is an error now, at start

    def aws(self, service: str) -> Any:
        return self._aws(service)

    def __call__(self, event: JobEvent) -> list[tuple[Channel, bool]]:
        s = self.settings
        channels: list[tuple[Channel, bool]] = [(self.webhook(url, per_job=False), False) for url in s.webhook_urls]
        channels += [(self._make(kind, target, False), False) for kind, target in self._targets]
        for url in dict.fromkeys(self._job_urls(event.subject)):
            if url not in s.webhook_urls:
                channels.append((self.webhook(url, per_job=True), True))
        return channels

    def _make(self, kind: str, target: str, per_job: bool) -> Channel:
        channel = self._kinds.maker(kind)(self, target, per_job)
        if channel.kind != kind:
            raise TypeError(f"the {kind!r} subscriber kind made a channel of kind {channel.kind!r}")
        return channel

    def _job_urls(self, job_id: str) -> list[str]:
        """The job's webhooks: from its plan, or from its job.json when intake refused the job (a refused plan
        carries no spec, and a user whose photo was unreadable is still owed the failure). A batch's event
        (subject `batches/{batch_id}`) goes to the webhooks of its batch.json's spec, if it can be read."""
        if job_id.startswith(BATCH_SUBJECT_PREFIX):
            return self._batch_urls(job_id[len(BATCH_SUBJECT_PREFIX):])
        plan = load_plan(self._store, job_id)
        if plan is not None and plan.error is None:
            return [sub.url for sub in plan.spec.subscribers]
        try:
            spec = parse_job_spec(self._store.get(layout.incoming_spec_key(job_id)))
        except (ObjectNotFound, InvalidInput, layout.InvalidKey):
            return []
        return [sub.url for sub in spec.subscribers]

    def _batch_urls(self, batch_id: str) -> list[str]:
        try:
            batch = parse_batch_spec(self._store.get(layout.batch_marker_key(batch_id)))
        except (ObjectNotFound, InvalidInput, layout.InvalidKey):
            return []
        return [sub.url for sub in batch.spec.subscribers]

    def for_record(self, record: DeliveryRecord) -> Channel | None:
        """The channel that retries a pending delivery; None (the delivery fails, saying so) for a kind this
        build does not declare."""
        if record.kind not in self._kinds.names:
            return None
        return self._make(record.kind, record.target, record.per_job)

    def webhook(self, url: str, *, per_job: bool) -> WebhookChannel:
        s = self.settings
        secrets = [x.get_secret_value() for x in (s.webhook_secret, s.webhook_secret_previous) if x is not None]
        return WebhookChannel(url, secrets, per_job=per_job, allow_private=s.webhook_allow_private,
                              timeout_s=s.webhook_timeout_s, poster=self._poster, resolver=self._resolver)


def build_notifier(store: ObjectStore, settings: Settings, *, outbox: Outbox | None = None,
                   channels: SettingsChannels | None = None, inline: bool = False) -> FanOutNotifier:
    """Deliveries go on in the background (`notify` returns once the records are open and the event is on
    record; `settle()` waits for them), or with `inline` before `notify` returns."""
    return FanOutNotifier(store, outbox or Outbox(store, retry_policy(settings)),
                          channels or SettingsChannels(store, settings),
                          linker(store, settings), expires_s=settings.presign_expiry_s,
                          inline_budget_s=settings.webhook_inline_budget_s,
                          pool=None if inline else DeliveryPool())


def redeliver_due(store: ObjectStore, settings: Settings, *, outbox: Outbox | None = None,
                  channels: SettingsChannels | None = None) -> int:
    """Retry every pending delivery whose time has come (the worker's and the Modal sweeper's call)."""
    channels = channels or SettingsChannels(store, settings)
    return (outbox or Outbox(store, retry_policy(settings))).redeliver_due(channels.for_record)
