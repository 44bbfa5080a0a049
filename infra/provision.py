"""`dropfit infra plan|apply|destroy`: the bucket's event wiring, idempotent, saying what it changed.

The SQS route (default): a dead-letter queue, the event queue (redrive to the DLQ after `max_receives`,
a policy that lets only this bucket send), and the bucket's notification rules (`infra/policies.py`).
The EventBridge route adds a connection (the shared-secret header), an API destination (the Modal web
endpoint), a role EventBridge assumes to call it, and a rule whose target parks failures in the DLQ.

Each resource is read, compared with what it should be, and created, updated or left alone; `apply` twice
changes nothing the second time. Notification rules of others (ids not starting with `dropfit-`) are kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from infra import policies
from infra.policies import Names, names_for
from infra.provision_eventbridge import EventBridgeWiring
from infra.resources import Action, Change, read

Route = Literal["sqs", "eventbridge"]
Clients = Callable[[str], Any]


@dataclass(frozen=True)
class ProvisionSpec:
    bucket: str
    route: Route = "sqs"
    endpoint: str | None = None  # the Modal web endpoint's URL (EventBridge route)
    token: str | None = None  # the shared secret EventBridge sends (EventBridge route)
    max_receives: int = 5
    visibility_timeout_s: int = 120
    retention_s: int = 4 * 24 * 3600
    dlq_retention_s: int = 14 * 24 * 3600

    def __post_init__(self) -> None:
        if self.route == "eventbridge" and not (self.endpoint and self.token):
            raise ValueError("the eventbridge route needs the endpoint URL and DROPFIT_ENDPOINT_TOKEN")


class Provisioner:
    def __init__(self, spec: ProvisionSpec, clients: Clients) -> None:
        self.spec = spec
        self.names: Names = names_for(spec.bucket)
        self._client = clients
        self._sqs = clients("sqs")
        self._s3 = clients("s3")
        self._account: str | None = None

    # ---- what the CLI calls ------------------------------------------------------------------------

    def plan(self) -> list[Change]:
        return self._converge(dry=True)

    def apply(self) -> list[Change]:
        return self._converge(dry=False)

    def destroy(self, *, dry: bool = False) -> list[Change]:
        changes = EventBridgeWiring(self, dry).remove()
        made_eventbridge = any(c.resource.startswith("eventbridge rule") for c in changes)
        changes += self._notifications([], eventbridge=False if made_eventbridge else None, dry=dry)
        for name in (self.names.queue, self.names.dlq):
            url = self.queue_url(name)
            if url:
                if not dry:
                    self._sqs.delete_queue(QueueUrl=url)
                changes.append(Change("delete", f"sqs queue {name}"))
        return changes

    # ---- facts -------------------------------------------------------------------------------------

    @property
    def region(self) -> str:
        return str(self._sqs.meta.region_name)

    @property
    def account(self) -> str:
        if self._account is None:
            self._account = str(self._client("sts").get_caller_identity()["Account"])
        return self._account

    def arn_of(self, name: str) -> str:
        return policies.queue_arn(self.region, self.account, name)

    def queue_url(self, name: str) -> str | None:
        reply = read(self._sqs.get_queue_url, QueueName=name)
        return str(reply["QueueUrl"]) if reply else None

    def client(self, service: str) -> Any:
        return self._client(service)

    # ---- converge ----------------------------------------------------------------------------------

    def _converge(self, dry: bool) -> list[Change]:
        spec, names = self.spec, self.names
        dlq_arn, queue_arn = self.arn_of(names.dlq), self.arn_of(names.queue)
        wiring = EventBridgeWiring(self, dry)
        dlq_attrs = {"MessageRetentionPeriod": str(spec.dlq_retention_s)}
        if spec.route == "eventbridge":
            dlq_attrs["Policy"] = json.dumps(policies.dlq_policy(dlq_arn, wiring.rule_arn))
        changes = self.ensure_queue(names.dlq, dlq_attrs, dry)
        if spec.route == "sqs":
            changes += self.ensure_queue(names.queue, {
                "VisibilityTimeout": str(spec.visibility_timeout_s),
                "MessageRetentionPeriod": str(spec.retention_s),
                "ReceiveMessageWaitTimeSeconds": "20",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": spec.max_receives}),
                "Policy": json.dumps(policies.queue_policy(queue_arn, spec.bucket, self.account)),
            }, dry)
            changes += self._notifications(policies.notification_rules(queue_arn), eventbridge=None, dry=dry)
            changes += wiring.remove()
        else:
            changes += wiring.ensure(dlq_arn)
            changes += self._notifications([], eventbridge=True, dry=dry)
        return changes

    def ensure_queue(self, name: str, attributes: dict[str, str], dry: bool) -> list[Change]:
        url = self.queue_url(name)
        if url is None:
            if not dry:
                self._sqs.create_queue(QueueName=name, Attributes=attributes)
            return [Change("create", f"sqs queue {name}")]
        current = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        differ = {k: v for k, v in attributes.items() if not _same_attribute(k, current.get(k), v)}
        if not differ:
            return []
        if not dry:  # all of them: moto (unlike AWS) drops a Policy that a partial update leaves out
            self._sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        return [Change("update", f"sqs queue {name}", ", ".join(sorted(differ)))]

    def _notifications(self, ours: list[dict[str, Any]], *, eventbridge: bool | None, dry: bool) -> list[Change]:
        """Our queue rules become `ours` (others' rules are kept); EventBridge on/off, or as it is (None)."""
        current = self._s3.get_bucket_notification_configuration(Bucket=self.spec.bucket)
        current.pop("ResponseMetadata", None)
        mine = [c for c in current.get("QueueConfigurations", []) if c.get("Id", "").startswith("dropfit-")]
        has_eventbridge = "EventBridgeConfiguration" in current
        want_eventbridge = has_eventbridge if eventbridge is None else eventbridge
        if sorted(map(_rule_shape, mine)) == sorted(map(_rule_shape, ours)) and has_eventbridge == want_eventbridge:
            return []
        config = {k: v for k, v in current.items() if k.endswith("Configurations")}
        config["QueueConfigurations"] = [c for c in config.get("QueueConfigurations", []) if c not in mine] + ours
        config = {k: v for k, v in config.items() if v}
        if want_eventbridge:
            config["EventBridgeConfiguration"] = {}
        if not dry:
            self._s3.put_bucket_notification_configuration(Bucket=self.spec.bucket, NotificationConfiguration=config)
        parts = [", ".join(r["Id"] for r in ours)] if ours else (["dropfit rules removed"] if mine else [])
        if want_eventbridge != has_eventbridge:
            parts.append("EventBridge " + ("on" if want_eventbridge else "off"))
        action: Action = "create" if ours and not mine else "update"
        if not ours and not want_eventbridge:
            action = "delete"
        return [Change(action, f"bucket notifications of {self.spec.bucket}", "; ".join(parts))]


def _same_attribute(key: str, current: str | None, desired: str) -> bool:
    if current is None:
        return False
    if key == "RedrivePolicy":
        a, b = json.loads(current), json.loads(desired)
        return (a.get("deadLetterTargetArn"), str(a.get("maxReceiveCount"))) == (
            b.get("deadLetterTargetArn"), str(b.get("maxReceiveCount")))
    if key == "Policy":
        return policies.same_json(current, desired)
    return str(current) == desired


def _rule_shape(rule: dict[str, Any]) -> str:
    filters = rule.get("Filter", {}).get("Key", {}).get("FilterRules", [])
    shape = {"id": rule.get("Id"), "arn": rule.get("QueueArn"), "events": sorted(rule.get("Events", [])),
             "filters": sorted((f["Name"].lower(), f["Value"]) for f in filters)}
    return json.dumps(shape, sort_keys=True)
