"""The cloud path end to end on moto's server (loopback): `dropfit infra apply`, upload the photos to
`incoming/`, `dropfit worker --until-idle` drains SQS and runs the phases against S3, and a webhook receiver
on loopback (allowed explicitly here) gets exactly one `dropfit.job.succeeded`, verified with the
`standardwebhooks` package, whose links fetch the results.

The phases are the test phases of `fakes.py`, given through the worker's registry seam; the wiring under
test (provisioning, notifications, SQS, the worker, the handlers on S3, the outbox) is the product's."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import structlog
import typer
from standardwebhooks import Webhook
from typer.testing import CliRunner

from fakes import RunLog, make_fake_registry, photo
from functions import cloud_cli
from functions.cli import app as dropfit
from infra.s3_store import S3Store
from pipeline import layout
from pipeline.manifests import ResultManifest
from pipeline.page.publish import is_page_file
from pipeline.phases import PHASES
from pipeline.sample import sample_garment, sample_person
from pipeline.state import read_model

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(autouse=True)
def _unbind_logs_from_the_runner() -> Iterator[None]:
    """The CLI configures structlog onto CliRunner's stderr, which is closed after each invoke: undo it."""
    yield
    structlog.reset_defaults()


@dataclass
class Receiver:
    url: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["content-length"]))
            got.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/hooks/dropfit", got)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def env() -> dict[str, str | None]:
    """Test credentials only (never the user's), the signing secret, and loopback webhooks allowed."""
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_PROFILE": None,
            "AWS_SESSION_TOKEN": None, "DROPFIT_WEBHOOK_SECRET": SECRET, "DROPFIT_WEBHOOK_ALLOW_PRIVATE": "true"}


def worker_cli(log: RunLog) -> typer.Typer:
    cli = typer.Typer()
    cloud_cli.register(cli, registry=lambda: make_fake_registry(log))
    return cli


def test_apply_upload_drain_publishes_and_tells_the_webhook_once(moto_server, s3_client, s3_bucket, receiver,
                                                                  env, tmp_path: Path) -> None:
    aws = ["--bucket", s3_bucket, "--endpoint-url", moto_server.endpoint_url, "--region", moto_server.region]
    runner = CliRunner()
    applied = runner.invoke(dropfit, ["infra", "apply", *aws], env=env)
    assert applied.exit_code == 0, applied.output
    assert "+ create sqs queue" in applied.output and "3 changed" in applied.output

    spec = {"subscribers": [{"url": receiver.url}], "person": {"height_cm": 172}}
    s3_client.put_object(Bucket=s3_bucket, Key="incoming/e2e/job.json", Body=json.dumps(spec).encode())
    s3_client.put_object(Bucket=s3_bucket, Key="incoming/e2e/person.jpg", Body=photo((200, 40, 40)))
    s3_client.put_object(Bucket=s3_bucket, Key="incoming/e2e/garment.jpg", Body=photo((40, 40, 200)))

    log = RunLog(tmp_path / "runs.log")
    worked = runner.invoke(worker_cli(log), ["worker", *aws, "--until-idle"], env=env)
    assert worked.exit_code == 0, worked.output
    assert "0 kept for redelivery" in worked.output

    store = S3Store(s3_client, s3_bucket)
    manifest = read_model(store, layout.result_manifest_key("e2e"), ResultManifest)
    assert manifest is not None, worked.output
    names = {f.name for f in manifest.files}
    assert {n for n in names if not is_page_file(n)} == (  # the test phases' files, besides the page's
        {"model.json"} | {f"angles/{a:03d}.json" for a in range(0, 360, 45)})
    assert [log.count(p.name) for p in PHASES] == [1, 1, 1, 1]

    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    event = Webhook(SECRET).verify(body, headers)
    assert event["type"] == "dropfit.job.succeeded" and event["subject"] == "e2e"
    assert headers["content-type"] == "application/cloudevents+json" and event["specversion"] == "1.0"
    links = event["data"]["links"]
    assert len(links["angles"]) == 8
    with urllib.request.urlopen(links["manifest"], timeout=10) as reply:  # noqa: S310 - moto on loopback
        assert reply.read() == store.get(layout.result_manifest_key("e2e"))
    assert "X-Amz-Signature=" in links["manifest"] and "X-Amz-Expires=604800" in links["manifest"]

    deliveries = [i.key for i in store.list(layout.result_prefix("e2e") + "_deliveries/")]
    record = json.loads(store.get(deliveries[0]))
    assert len(deliveries) == 1 and record["state"] == "delivered" and record["attempts"][0]["status"] == 204
    assert list(store.list("work/outbox/")) == []

    again = runner.invoke(worker_cli(log), ["worker", *aws, "--until-idle"], env=env)
    assert again.exit_code == 0, again.output
    assert len(receiver.requests) == 1, "a second drain tells no one twice"
    assert [log.count(p.name) for p in PHASES] == [1, 1, 1, 1]


def test_the_real_phases_run_through_the_cloud_path_to_a_glb_and_8_angles(moto_server, s3_client, s3_bucket,
                                                                           receiver, env) -> None:
    """The same wiring with the product's own phases (CPU models): what a self-hosted user gets."""
    aws = ["--bucket", s3_bucket, "--endpoint-url", moto_server.endpoint_url, "--region", moto_server.region]
    runner = CliRunner()
    assert runner.invoke(dropfit, ["infra", "apply", *aws], env=env).exit_code == 0
    spec = {"subscribers": [{"url": receiver.url}]}
    s3_client.put_object(Bucket=s3_bucket, Key="incoming/real/job.json", Body=json.dumps(spec).encode())
    s3_client.put_object(Bucket=s3_bucket, Key="incoming/real/person.png", Body=sample_person())
    s3_client.put_object(Bucket=s3_bucket, Key="incoming/real/garment.png", Body=sample_garment())
    product = typer.Typer()
    cloud_cli.register(product)
    worked = runner.invoke(product, ["worker", *aws, "--until-idle"], env=env)
    assert worked.exit_code == 0, worked.output
    store = S3Store(s3_client, s3_bucket)
    manifest = read_model(store, layout.result_manifest_key("real"), ResultManifest)
    assert manifest is not None, worked.output
    names = {f.name for f in manifest.files}
    assert {"model.glb", "contact_sheet.jpg"} | {f"angles/{a:03d}.png" for a in range(0, 360, 45)} <= names
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    event = Webhook(SECRET).verify(body, headers)
    assert event["type"] == "dropfit.job.succeeded" and event["data"]["links"]["glb"]
