"""`dropfit infra`: provisioning against moto's server. Apply makes the wiring, a second apply changes
nothing, destroy removes what apply made (and only that); the notification filters let through exactly the
writes the router acts on; the policy documents are least-privilege."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner

from events.normalize import normalize_sqs_message
from functions.cli import app as dropfit
from infra import policies
from infra.provision import Provisioner, ProvisionSpec

TOKEN = "a-shared-secret-for-eventbridge"


@pytest.fixture(autouse=True)
def _unbind_logs_from_the_runner() -> Iterator[None]:
    """The CLI configures structlog onto CliRunner's stderr, which is closed after each invoke: undo it."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def clients(moto_server) -> Any:
    made: dict[str, Any] = {}
    return lambda service: made.setdefault(service, moto_server.client(service))


def provisioner(clients: Any, bucket: str, **spec: Any) -> Provisioner:
    return Provisioner(ProvisionSpec(bucket=bucket, **spec), clients)


def test_apply_makes_the_wiring_and_a_second_apply_changes_nothing(clients, s3_bucket) -> None:
    p = provisioner(clients, s3_bucket)
    first = p.apply()
    assert [(c.action, c.resource.split(" ")[0]) for c in first] == [("create", "sqs"), ("create", "sqs"),
                                                                     ("create", "bucket")]
    assert p.apply() == [] and p.plan() == []
    sqs = clients("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=p.queue_url(p.names.queue), AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(p.names.dlq) and int(redrive["maxReceiveCount"]) == 5
    statement = json.loads(attributes["Policy"])["Statement"][0]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == f"arn:aws:s3:::{s3_bucket}"


def test_a_changed_setting_is_planned_then_applied_once(clients, s3_bucket) -> None:
    provisioner(clients, s3_bucket).apply()
    changed = provisioner(clients, s3_bucket, max_receives=9)
    planned = changed.plan()
    assert [str(c) for c in planned] == [f"~ update sqs queue {changed.names.queue} (RedrivePolicy)"]
    assert changed.apply() == planned and changed.apply() == []


def test_destroy_removes_what_apply_made_and_keeps_other_rules(clients, s3_bucket) -> None:
    s3, sqs = clients("s3"), clients("sqs")
    other_url = sqs.create_queue(QueueName=f"other-{s3_bucket}")["QueueUrl"]
    other_arn = sqs.get_queue_attributes(QueueUrl=other_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    foreign = {"Id": "someone-else", "QueueArn": other_arn, "Events": ["s3:ObjectRemoved:*"]}
    s3.put_bucket_notification_configuration(Bucket=s3_bucket,
                                             NotificationConfiguration={"QueueConfigurations": [foreign]})
    p = provisioner(clients, s3_bucket)
    p.apply()
    ids = [c["Id"] for c in s3.get_bucket_notification_configuration(Bucket=s3_bucket)["QueueConfigurations"]]
    assert ids[0] == "someone-else" and set(ids[1:]) == set(policies.NOTIFICATION_FILTERS)
    assert p.destroy(dry=True) and p.queue_url(p.names.queue) is not None, "a dry run changes nothing"
    removed = p.destroy()
    assert {c.action for c in removed} == {"delete"} and len(removed) == 3
    assert p.queue_url(p.names.queue) is None and p.queue_url(p.names.dlq) is None
    kept = s3.get_bucket_notification_configuration(Bucket=s3_bucket)["QueueConfigurations"]
    assert [c["Id"] for c in kept] == ["someone-else"]
    assert p.destroy() == []


def test_the_filters_pass_exactly_the_writes_the_router_acts_on(clients, s3_bucket) -> None:
    p = provisioner(clients, s3_bucket)
    p.apply()
    s3, sqs = clients("s3"), clients("sqs")
    wanted = ["incoming/j/person.jpg", "incoming/j/job.json", "catalog/b/batch.json", "work/avatar/k/_manifest.json",
              "work/fitting/k/_error.json", "work/jobs/j/plan.json", "results/j/manifest.json", "results/j/error.json"]
    ignored = ["catalog/b/people/a.jpg", "work/avatar/k/body.json", "work/avatar/k/_claim.json",
               "work/avatar/k/_jobs/j", "work/outbox/abc", "results/j/angles/000.png", "results/j/model.glb",
               "results/j/_deliveries/msg-x.json", "results/batches/b/report.json", "elsewhere/x.json"]
    for key in wanted + ignored:
        s3.put_object(Bucket=s3_bucket, Key=key, Body=b"{}")
    seen: list[str] = []
    while messages := sqs.receive_message(QueueUrl=p.queue_url(p.names.queue), MaxNumberOfMessages=10,
                                          WaitTimeSeconds=0).get("Messages"):
        for message in messages:
            seen += [e.key for e in normalize_sqs_message(message)]
            sqs.delete_message(QueueUrl=p.queue_url(p.names.queue), ReceiptHandle=message["ReceiptHandle"])
    assert sorted(seen) == sorted(wanted)


def test_the_eventbridge_route_is_made_and_removed(clients, s3_bucket) -> None:
    p = provisioner(clients, s3_bucket, route="eventbridge", endpoint="https://ws--dropfit-events.modal.run",
                    token=TOKEN)
    made = {c.resource.rsplit(" ", 1)[0] for c in p.apply()}
    assert {"eventbridge connection", "eventbridge api destination", "iam role", "iam role policy",
            "eventbridge rule", "eventbridge target"} <= made
    events = clients("events")
    connection = events.describe_connection(Name=p.names.connection)
    assert connection["AuthParameters"]["ApiKeyAuthParameters"]["ApiKeyName"] == "x-dropfit-token"
    assert TOKEN not in json.dumps(connection, default=str), "the token is never readable back"
    target = events.list_targets_by_rule(Rule=p.names.rule)["Targets"][0]
    assert target["DeadLetterConfig"]["Arn"].endswith(p.names.dlq)
    pattern = json.loads(events.describe_rule(Name=p.names.rule)["EventPattern"])
    assert pattern["detail"]["bucket"]["name"] == [s3_bucket]
    # moto does not report EventBridgeConfiguration back, so only that line may repeat under moto
    assert {c.resource for c in p.apply()} <= {f"bucket notifications of {s3_bucket}"}
    rotated = provisioner(clients, s3_bucket, route="eventbridge", endpoint="https://ws--dropfit-events.modal.run",
                          token="a-new-token")
    assert f"eventbridge connection {p.names.connection}" in {c.resource for c in rotated.plan()}
    removed = {c.resource.rsplit(" ", 1)[0] for c in p.destroy()}
    assert {"eventbridge rule", "iam role", "eventbridge api destination", "eventbridge connection"} <= removed
    assert [c for c in p.destroy() if "eventbridge" in c.resource or "iam" in c.resource] == []


def test_the_eventbridge_route_needs_an_endpoint_and_a_token() -> None:
    with pytest.raises(ValueError, match="endpoint URL and DROPFIT_ENDPOINT_TOKEN"):
        ProvisionSpec(bucket="b", route="eventbridge", endpoint="https://x.modal.run")


def test_the_cli_plans_applies_twice_and_prints_the_policy(moto_server, s3_bucket) -> None:
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_PROFILE": None}
    aws = ["--bucket", s3_bucket, "--endpoint-url", moto_server.endpoint_url, "--region", moto_server.region]
    runner = CliRunner()
    planned = runner.invoke(dropfit, ["infra", "plan", *aws], env=env)
    assert planned.exit_code == 0 and "3 would change" in planned.output, planned.output
    assert runner.invoke(dropfit, ["infra", "apply", *aws], env=env).exit_code == 0
    second = runner.invoke(dropfit, ["infra", "apply", *aws], env=env)
    assert second.exit_code == 0 and "no changes" in second.output
    printed = runner.invoke(dropfit, ["infra", "policy", *aws], env=env)
    document = json.loads(printed.output)
    assert any(s["Sid"] == "ConsumeEvents" for s in document["Statement"])
    destroyed = runner.invoke(dropfit, ["infra", "destroy", *aws], env=env)
    assert destroyed.exit_code == 0 and "3 changed" in destroyed.output


def test_the_worker_policy_is_least_privilege() -> None:
    document = policies.worker_policy("bkt", "arn:aws:sqs:us-east-1:1:q", sns_topic="arn:aws:sns:us-east-1:1:t")
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert by_sid["WriteOutputs"]["Resource"] == ["arn:aws:s3:::bkt/work/*", "arn:aws:s3:::bkt/results/*"]
    assert "s3:DeleteBucket" not in json.dumps(document) and '"*"' not in json.dumps(document)
    assert by_sid["ListLayout"]["Condition"]["StringLike"]["s3:prefix"] == ["incoming/*", "catalog/*", "work/*",
                                                                            "results/*"]
    assert set(by_sid) == {"ReadObjects", "WriteOutputs", "ListLayout", "ConsumeEvents", "NotifyTopic"}


def test_resource_names_fit_aws_limits_for_long_bucket_names() -> None:
    names = policies.names_for("a.very-long.bucket-name-with-dots-and-dashes-that-is-sixty-three-ch")
    assert len(names.queue) <= 80 and len(names.rule) <= 64 and len(names.role) <= 64
    assert "." not in names.queue and names.queue.endswith("-events") and names.dlq.endswith("-dlq")
    assert policies.queue_arn_from_url("https://sqs.eu-west-1.amazonaws.com/123/q") == "arn:aws:sqs:eu-west-1:123:q"
