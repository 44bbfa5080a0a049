"""What `dropfit infra` provisions, as data: resource names, notification rules, the EventBridge pattern
and the IAM policy documents (least privilege). Pure functions; `infra/provision.py` applies them.

Notification filters: only the writes the router acts on reach the queue, so a phase's own output files
never wake anything and nothing loops (every phase writes under its own `work/{phase}/` prefix, and a run's
`_manifest.json` or `_error.json` is written last):

    incoming/                       a job's photos and job.json: intake
    catalog/ ... batch.json         a batch's commit marker
    work/ ... _manifest.json        a run is done: the phases that need it, publish
    work/ ... _error.json           a run failed for good: fail its jobs
    work/jobs/ ... plan.json        a job was planned: its first phases
    results/ ... manifest.json      a job ended (succeeded or failed): its batch's report
    results/ ... error.json
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

TOKEN_HEADER = "x-dropfit-token"
RULE_ID_PREFIX = "dropfit-"
NOTIFICATION_FILTERS: dict[str, tuple[str, str | None]] = {  # rule id -> (prefix, suffix)
    "dropfit-incoming": ("incoming/", None),
    "dropfit-catalog-marker": ("catalog/", "batch.json"),
    "dropfit-run-done": ("work/", "_manifest.json"),
    "dropfit-run-error": ("work/", "_error.json"),
    "dropfit-job-plan": ("work/jobs/", "plan.json"),
    "dropfit-result": ("results/", "manifest.json"),
    "dropfit-result-error": ("results/", "error.json"),
}
PREFIXES = ("incoming/", "catalog/", "work/", "results/")


@dataclass(frozen=True)
class Names:
    bucket: str
    queue: str
    dlq: str
    rule: str
    connection: str
    destination: str
    role: str


def _name(bucket: str, suffix: str, limit: int) -> str:
    base = "dropfit-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in bucket)
    if len(base) + len(suffix) > limit:
        digest = hashlib.sha256(bucket.encode()).hexdigest()[:8]
        base = f"{base[: limit - len(suffix) - 9]}-{digest}"
    return base + suffix


def names_for(bucket: str) -> Names:
    return Names(bucket=bucket, queue=_name(bucket, "-events", 80), dlq=_name(bucket, "-dlq", 80),
                 rule=_name(bucket, "-objects", 64), connection=_name(bucket, "-endpoint", 64),
                 destination=_name(bucket, "-endpoint", 64), role=_name(bucket, "-eventbridge", 64))


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def queue_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sqs:{region}:{account}:{name}"


def queue_arn_from_url(url: str) -> str:
    """https://sqs.{region}.amazonaws.com/{account}/{name} -> its ARN (the region from the host)."""
    host, account, name = url.split("://", 1)[-1].split("/")[:3]
    region = host.split(".")[1] if host.startswith("sqs.") else "us-east-1"
    return queue_arn(region, account, name)


def notification_rules(queue: str) -> list[dict[str, Any]]:
    rules = []
    for rule_id, (prefix, suffix) in NOTIFICATION_FILTERS.items():
        filters = [{"Name": "prefix", "Value": prefix}] + ([{"Name": "suffix", "Value": suffix}] if suffix else [])
        rules.append({"Id": rule_id, "QueueArn": queue, "Events": ["s3:ObjectCreated:*"],
                      "Filter": {"Key": {"FilterRules": filters}}})
    return rules


def event_pattern(bucket: str) -> dict[str, Any]:
    """The EventBridge rule's pattern: the same writes as the notification rules."""
    keys: list[dict[str, str]] = [{"prefix": "incoming/"}]
    for prefix, suffix in list(NOTIFICATION_FILTERS.values())[1:]:
        keys.append({"wildcard": f"{prefix}*{suffix}"})
    return {"source": ["aws.s3"], "detail-type": ["Object Created"],
            "detail": {"bucket": {"name": [bucket]}, "object": {"key": keys}}}


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def queue_policy(queue: str, bucket: str, account: str) -> dict[str, Any]:
    """Only this bucket (of this account) may send to the event queue."""
    return _doc({"Sid": "OnlyTheBucketSends", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
                 "Action": "sqs:SendMessage", "Resource": queue,
                 "Condition": {"ArnEquals": {"aws:SourceArn": bucket_arn(bucket)},
                               "StringEquals": {"aws:SourceAccount": account}}})


def dlq_policy(dlq: str, rule_arn: str) -> dict[str, Any]:
    """The EventBridge rule may park undeliverable events in the dead-letter queue."""
    return _doc({"Sid": "TheRuleParksFailures", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                 "Action": "sqs:SendMessage", "Resource": dlq, "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}})


def eventbridge_trust() -> dict[str, Any]:
    return _doc({"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole"})


def eventbridge_invoke(destination_arn: str) -> dict[str, Any]:
    return _doc({"Effect": "Allow", "Action": "events:InvokeApiDestination", "Resource": destination_arn})


def worker_policy(bucket: str, queue: str | None = None, *, sns_topic: str | None = None,
                  notify_queue: str | None = None, bus_arn: str | None = None) -> dict[str, Any]:
    """What the Modal functions (or a self-hosted worker) need, and no more: read the bucket, write and
    delete only under work/ and results/, list the four prefixes, consume the event queue, and publish to
    the configured subscriber targets."""
    arn = bucket_arn(bucket)
    statements: list[dict[str, Any]] = [
        {"Sid": "ReadObjects", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{arn}/*"},
        {"Sid": "WriteOutputs", "Effect": "Allow", "Action": ["s3:PutObject", "s3:DeleteObject"],
         "Resource": [f"{arn}/work/*", f"{arn}/results/*"]},
        {"Sid": "ListLayout", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": arn,
         "Condition": {"StringLike": {"s3:prefix": [f"{p}*" for p in PREFIXES]}}},
    ]
    if queue:
        statements.append({"Sid": "ConsumeEvents", "Effect": "Allow", "Resource": queue, "Action": [
            "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes",
            "sqs:GetQueueUrl"]})
    if sns_topic:
        statements.append({"Sid": "NotifyTopic", "Effect": "Allow", "Action": "sns:Publish", "Resource": sns_topic})
    if notify_queue:
        statements.append({"Sid": "NotifyQueue", "Effect": "Allow", "Action": "sqs:SendMessage",
                           "Resource": notify_queue})
    if bus_arn:
        statements.append({"Sid": "NotifyBus", "Effect": "Allow", "Action": "events:PutEvents", "Resource": bus_arn})
    return _doc(*statements)


def token_fingerprint(token: str) -> str:
    """Stored in the connection's description: a changed token is seen without reading the secret back."""
    return "dropfit endpoint token sha256:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def _parsed(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) and value else value


def same_json(a: Any, b: Any) -> bool:
    """Two JSON documents (strings or parsed) are equal, whatever their key order and spacing."""
    return json.dumps(_parsed(a), sort_keys=True) == json.dumps(_parsed(b), sort_keys=True)
