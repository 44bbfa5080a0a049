"""The EventBridge route of `dropfit infra`: S3 -> EventBridge rule -> API destination -> the Modal endpoint.

A connection holds the shared secret (sent as the `x-dropfit-token` header; its fingerprint sits in the
description, since the secret cannot be read back), an API destination names the endpoint, a role lets
EventBridge invoke it, and the rule's target retries for a day and then parks the event in the DLQ.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from infra import policies
from infra.resources import Change, read

if TYPE_CHECKING:
    from infra.provision import Provisioner

TARGET_ID = "dropfit-endpoint"
ROLE_POLICY = "invoke-dropfit-endpoint"
RATE_PER_S = 20


class EventBridgeWiring:
    def __init__(self, provisioner: Provisioner, dry: bool) -> None:
        self._p = provisioner
        self._dry = dry
        self._names = provisioner.names
        self._events = provisioner.client("events")
        self._iam = provisioner.client("iam")

    @property
    def rule_arn(self) -> str:
        return f"arn:aws:events:{self._p.region}:{self._p.account}:rule/{self._names.rule}"

    def ensure(self, dlq_arn: str) -> list[Change]:
        changes = self._connection()
        connection = read(self._events.describe_connection, Name=self._names.connection)
        connection_arn = connection["ConnectionArn"] if connection else "(new connection)"
        changes += self._destination(connection_arn)
        destination = read(self._events.describe_api_destination, Name=self._names.destination)
        destination_arn = destination["ApiDestinationArn"] if destination else "(new destination)"
        changes += self._role(destination_arn)
        changes += self._rule(destination_arn, dlq_arn)
        return changes

    def _apply(self, call: Callable[..., Any], **request: Any) -> None:
        if not self._dry:
            call(**request)

    def _connection(self) -> list[Change]:
        token = self._p.spec.token or ""
        current = read(self._events.describe_connection, Name=self._names.connection)
        desired = {"Name": self._names.connection, "AuthorizationType": "API_KEY",
                   "Description": policies.token_fingerprint(token),
                   "AuthParameters": {"ApiKeyAuthParameters": {"ApiKeyName": policies.TOKEN_HEADER,
                                                               "ApiKeyValue": token}}}
        if current is None:
            self._apply(self._events.create_connection, **desired)
            return [Change("create", f"eventbridge connection {self._names.connection}")]
        if current.get("Description") == desired["Description"] and current.get("AuthorizationType") == "API_KEY":
            return []
        self._apply(self._events.update_connection, **desired)
        return [Change("update", f"eventbridge connection {self._names.connection}", "token")]

    def _destination(self, connection_arn: str) -> list[Change]:
        current = read(self._events.describe_api_destination, Name=self._names.destination)
        desired = {"Name": self._names.destination, "ConnectionArn": connection_arn, "HttpMethod": "POST",
                   "InvocationEndpoint": self._p.spec.endpoint, "InvocationRateLimitPerSecond": RATE_PER_S}
        if current is None:
            self._apply(self._events.create_api_destination, **desired)
            return [Change("create", f"eventbridge api destination {self._names.destination}")]
        differ = sorted(k for k, v in desired.items() if current.get(k) != v)
        if not differ:
            return []
        self._apply(self._events.update_api_destination, **desired)
        return [Change("update", f"eventbridge api destination {self._names.destination}", ", ".join(differ))]

    def _role(self, destination_arn: str) -> list[Change]:
        name, changes = self._names.role, []
        role = read(self._iam.get_role, RoleName=name)
        trust = json.dumps(policies.eventbridge_trust())
        if role is None:
            self._apply(self._iam.create_role, RoleName=name, AssumeRolePolicyDocument=trust,
                        Description="lets EventBridge call the dropfit endpoint")
            changes.append(Change("create", f"iam role {name}"))
        elif not policies.same_json(role["Role"]["AssumeRolePolicyDocument"], trust):
            self._apply(self._iam.update_assume_role_policy, RoleName=name, PolicyDocument=trust)
            changes.append(Change("update", f"iam role {name}", "trust policy"))
        invoke = policies.eventbridge_invoke(destination_arn)
        current = read(self._iam.get_role_policy, RoleName=name, PolicyName=ROLE_POLICY) if role else None
        if current is None or not policies.same_json(current["PolicyDocument"], invoke):
            self._apply(self._iam.put_role_policy, RoleName=name, PolicyName=ROLE_POLICY,
                        PolicyDocument=json.dumps(invoke))
            changes.append(Change("update" if current else "create", f"iam role policy {name}/{ROLE_POLICY}"))
        return changes

    def _rule(self, destination_arn: str, dlq_arn: str) -> list[Change]:
        name, changes = self._names.rule, []
        pattern = policies.event_pattern(self._names.bucket)
        current = read(self._events.describe_rule, Name=name)
        if current is None or current.get("State") != "ENABLED" or not policies.same_json(
                current.get("EventPattern"), pattern):
            self._apply(self._events.put_rule, Name=name, EventPattern=json.dumps(pattern), State="ENABLED",
                        Description=f"dropfit: objects of {self._names.bucket} to the Modal endpoint")
            changes.append(Change("update" if current else "create", f"eventbridge rule {name}"))
        role_arn = f"arn:aws:iam::{self._p.account}:role/{self._names.role}"
        target = {"Id": TARGET_ID, "Arn": destination_arn, "RoleArn": role_arn, "DeadLetterConfig": {"Arn": dlq_arn},
                  "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}}
        targets = read(self._events.list_targets_by_rule, Rule=name) if current else None
        have = next((t for t in (targets or {}).get("Targets", []) if t.get("Id") == TARGET_ID), None)
        if have is None or any(have.get(k) != v for k, v in target.items()):
            self._apply(self._events.put_targets, Rule=name, Targets=[target])
            changes.append(Change("update" if have else "create", f"eventbridge target {name}/{TARGET_ID}"))
        return changes

    def remove(self) -> list[Change]:
        changes: list[Change] = []
        names = self._names
        if read(self._events.describe_rule, Name=names.rule) is not None:
            targets = read(self._events.list_targets_by_rule, Rule=names.rule) or {}
            ids = [t["Id"] for t in targets.get("Targets", [])]
            if ids:
                self._apply(self._events.remove_targets, Rule=names.rule, Ids=ids)
            self._apply(self._events.delete_rule, Name=names.rule)
            changes.append(Change("delete", f"eventbridge rule {names.rule}"))
        if read(self._iam.get_role, RoleName=names.role) is not None:
            if read(self._iam.get_role_policy, RoleName=names.role, PolicyName=ROLE_POLICY) is not None:
                self._apply(self._iam.delete_role_policy, RoleName=names.role, PolicyName=ROLE_POLICY)
            self._apply(self._iam.delete_role, RoleName=names.role)
            changes.append(Change("delete", f"iam role {names.role}"))
        if read(self._events.describe_api_destination, Name=names.destination) is not None:
            self._apply(self._events.delete_api_destination, Name=names.destination)
            changes.append(Change("delete", f"eventbridge api destination {names.destination}"))
        if read(self._events.describe_connection, Name=names.connection) is not None:
            self._apply(self._events.delete_connection, Name=names.connection)
            changes.append(Change("delete", f"eventbridge connection {names.connection}"))
        return changes
