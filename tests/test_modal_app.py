"""The Modal app imports offline with no credentials, and its functions run the same handlers through
`.local()` against S3 on moto: the task runner, each phase's class, the poller's and the endpoint's
dispatch (with `.local` in place of `.spawn`), the sweeper. Remote calls are never attempted (conftest's
guard makes them fail fast)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import LOCAL_VOLUME_WARNING, plan_sample_job_on_s3
from events.tasks import Task
from fakes import photo
from functions.dispatch import Spawn, SpawnDispatcher
from infra.s3_store import S3Store
from pipeline import layout
from pipeline.phases import PHASES
from pipeline.registry import product_registry
from pipeline.sample import sample_person
from pipeline.state import load_plan, run_manifest

ROOT = Path(__file__).resolve().parent.parent


def test_the_app_imports_offline_without_credentials() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODAL_TOKEN", "AWS_"))}
    code = ("import time; t = time.time(); import modal_deploy as m; "
            "print(m.app.name, type(m.run_task).__name__, round(time.time() - t, 2))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    name, kind, seconds = result.stdout.split()
    assert (name, kind) == ("dropfit", "Function") and float(seconds) < 10


def test_run_task_runs_the_same_handlers_locally_against_s3(s3_env, s3_client, s3_bucket) -> None:
    import modal_deploy

    s3_client.put_object(Bucket=s3_bucket, Key="incoming/m1/person.png", Body=sample_person())
    s3_client.put_object(Bucket=s3_bucket, Key="incoming/m1/garment.jpg", Body=photo((40, 40, 200)))
    first = modal_deploy.run_task.local("intake", "m1", s3_bucket)
    assert (first["outcome"], first["detail"]) == ("done", "planned")
    plan = load_plan(S3Store(s3_client, s3_bucket), "m1")
    assert plan is not None and set(plan.runs) == {"avatar", "wardrobe", "fitting", "viewer3d"}
    assert modal_deploy.run_task.local("intake", "m1", s3_bucket)["outcome"] == "skipped"
    avatar = modal_deploy.run_task.local("avatar", plan.run("avatar").key, s3_bucket)  # the real models, on S3
    assert (avatar["outcome"], avatar["detail"]) == ("done", "done"), avatar
    assert run_manifest(S3Store(s3_client, s3_bucket), "avatar", plan.run("avatar").key) is not None
    missing = next((name for name in ("wardrobe", "fitting", "viewer3d") if name in product_registry().missing()),
                   None)
    if missing is None:
        return  # every phase is in this build; test_each_phase_function_runs_through_local_against_s3 runs them
    later = modal_deploy.run_task.local(missing, plan.run(missing).key, s3_bucket)
    assert later["outcome"] == "unavailable" and "not in this build" in later["detail"]
    assert s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=layout.claim_key(missing, plan.run(missing).key))[
        "KeyCount"] == 0, "the claim is released when the phase is not available"


@pytest.mark.timeout(60)
def test_a_remote_call_from_a_test_fails_at_once_without_reaching_modal() -> None:
    import modal

    import modal_deploy

    started = time.monotonic()
    with pytest.raises(modal.exception.ExecutionError, match="not been hydrated"):
        modal_deploy.run_task.spawn("intake", "x", "bucket")
    assert time.monotonic() - started < 5


# ---- the cloud path's functions, through .local() against moto ----------------------------------------


def test_every_function_of_the_cloud_path_is_defined() -> None:
    import modal_deploy as m

    assert set(m.PHASE_CLASSES) == {p.name for p in PHASES}
    for name in ("run_task", "poll_queue", "route_events", "eventbridge", "sweep", "prepare_models"):
        assert type(getattr(m, name)).__name__ == "Function", name
    assert all(type(cls).__name__ == "Cls" for cls in m.PHASE_CLASSES.values())
    assert len(m.GPU_FALLBACKS) >= 2, "a GPU phase names fallbacks"


def local_spawners() -> tuple[dict[str, Spawn], Spawn]:
    """The Modal dispatcher's shape with `.local` in place of `.spawn`: runs here, never reaches Modal."""
    import modal_deploy as m

    phases = {name: (lambda step, subject, bucket, cls=cls: cls(phase=step).run.local(subject, bucket))
              for name, cls in m.PHASE_CLASSES.items()}
    return phases, lambda step, subject, bucket: m.run_task.local(step, subject, bucket)




@pytest.mark.filterwarnings(LOCAL_VOLUME_WARNING)
def test_each_phase_function_runs_through_local_against_s3(s3_env, s3_client, s3_bucket) -> None:
    import modal_deploy

    store, plan = plan_sample_job_on_s3(s3_client, s3_bucket, "p1")
    product = product_registry()
    for phase in PHASES:
        key = plan.run(phase.name).key
        if product.available(phase.name):  # the real models, in the phase's own Modal class, on S3
            result = modal_deploy.PHASE_CLASSES[phase.name](phase=phase.name).run.local(key, s3_bucket)
            assert (result["step"], result["outcome"], result["detail"]) == (phase.name, "done", "done"), result
            assert run_manifest(store, phase.name, key) is not None
            continue
        result = modal_deploy.PHASE_CLASSES[phase.name](phase=phase.name).run.local(key, s3_bucket)
        assert (result["step"], result["subject"], result["outcome"]) == (phase.name, key, "unavailable")
        assert s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=layout.claim_key(phase.name, key))["KeyCount"] == 0


@pytest.mark.filterwarnings(LOCAL_VOLUME_WARNING)
def test_the_poller_routes_and_dispatches_then_deletes_the_messages(s3_env, moto_server, s3_client,
                                                                    s3_bucket) -> None:
    from functions.cloud import poll_queue, s3_store
    from infra.provision import Provisioner, ProvisionSpec
    from infra.settings import Settings

    wiring = Provisioner(ProvisionSpec(bucket=s3_bucket), moto_server.client)
    wiring.apply()
    queue = wiring.queue_url(wiring.names.queue)
    settings = Settings(queue_url=queue)
    s3_client.put_object(Bucket=s3_bucket, Key="incoming/q1/person.jpg", Body=photo((200, 40, 40)))
    s3_client.put_object(Bucket=s3_bucket, Key="incoming/q1/garment.jpg", Body=photo((40, 40, 200)))
    phases, default = local_spawners()
    dispatcher = SpawnDispatcher(s3_store(s3_bucket, settings), phases, default)
    stats = poll_queue(settings, dispatcher, seconds=2, wait_s=1)
    assert stats["kept"] == 0 and stats["deleted"] == stats["received"] >= 4
    steps = [t.step for t in dispatcher.spawned]
    assert steps.count("intake") == 1 and {"avatar", "wardrobe"} <= set(steps)
    assert load_plan(S3Store(s3_client, s3_bucket), "q1") is not None
    left = moto_server.client("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    # nothing received is left in flight; what the queue may hold now are the events of the phases' own writes
    assert left["ApproximateNumberOfMessagesNotVisible"] == "0"


def eventbridge_body(bucket: str, key: str) -> bytes:
    return json.dumps({"version": "0", "source": "aws.s3", "detail-type": "Object Created",
                       "time": "2026-01-01T00:00:00Z", "detail": {"bucket": {"name": bucket},
                                                                  "object": {"key": key, "size": 10}}}).encode()


def call_asgi(app: Any, body: bytes, headers: dict[str, str], method: str = "POST") -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], json.loads(sent[1]["body"])


def test_the_endpoint_authenticates_checks_and_hands_off_fast(s3_env, s3_client, s3_bucket) -> None:
    from functions.cloud import route_payload, s3_store
    from functions.eventbridge_endpoint import asgi_app
    from infra.settings import Settings

    handed: list[str] = []
    app = asgi_app("s3cret", accept=handed.append)
    body = eventbridge_body(s3_bucket, "incoming/e1/garment.jpg")
    assert call_asgi(app, body, {"x-dropfit-token": "wrong"})[0] == 401
    assert call_asgi(app, body, {})[0] == 401
    assert call_asgi(app, b"not json", {"x-dropfit-token": "s3cret"})[0] == 400
    assert call_asgi(app, body, {"x-dropfit-token": "s3cret"}, method="GET")[0] == 405
    assert call_asgi(asgi_app(None, accept=handed.append), body, {"x-dropfit-token": ""})[0] == 503
    started = time.monotonic()
    assert call_asgi(app, body, {"x-dropfit-token": "s3cret"}) == (202, {"accepted": 1})
    assert time.monotonic() - started < 1.0 and handed == [body.decode()]

    s3_client.put_object(Bucket=s3_bucket, Key="incoming/e1/person.jpg", Body=photo((200, 40, 40)))
    s3_client.put_object(Bucket=s3_bucket, Key="incoming/e1/garment.jpg", Body=photo((40, 40, 200)))
    phases, default = local_spawners()
    dispatcher = SpawnDispatcher(s3_store(s3_bucket, Settings()), phases, default)
    assert route_payload(handed[0], dispatcher) == {"tasks": ["intake:e1"]}
    assert load_plan(S3Store(s3_client, s3_bucket), "e1") is not None


def test_the_deployed_endpoint_refuses_a_wrong_token_and_fails_safe_offline(s3_env, monkeypatch, s3_bucket) -> None:
    import modal_deploy

    monkeypatch.setenv("DROPFIT_ENDPOINT_TOKEN", "s3cret")
    app = modal_deploy.eventbridge.local()
    body = eventbridge_body(s3_bucket, "incoming/x/person.jpg")
    assert call_asgi(app, body, {"x-dropfit-token": "nope"})[0] == 401
    started = time.monotonic()
    status, _ = call_asgi(app, body, {"x-dropfit-token": "s3cret"})
    assert status == 503 and time.monotonic() - started < 5, "spawn fails offline: EventBridge would retry"


def test_the_dispatcher_skips_duplicates_and_phases_this_build_lacks(folder_store) -> None:
    started: list[tuple[str, str, str]] = []
    clock = [0.0]
    dispatcher = SpawnDispatcher(folder_store, {}, lambda *call: started.append(call),
                                 available=lambda step: step != "fitting", dedupe_s=30, clock=lambda: clock[0])
    for task in (Task(step="intake", subject="j"), Task(step="intake", subject="j"), Task(step="fitting", subject="k")):
        dispatcher.submit(task)
    clock[0] = 31.0
    dispatcher.submit(Task(step="intake", subject="j"))
    assert started == [("intake", "j", folder_store.bucket)] * 2


def test_the_sweeper_dispatches_what_storage_says_is_due(s3_env, s3_client, s3_bucket) -> None:
    from functions.cloud import s3_store, sweep_bucket
    from infra.settings import Settings

    s3_client.put_object(Bucket=s3_bucket, Key="incoming/s1/person.jpg", Body=photo((200, 40, 40)))
    s3_client.put_object(Bucket=s3_bucket, Key="incoming/s1/garment.jpg", Body=photo((40, 40, 200)))
    started: list[tuple[str, str, str]] = []
    dispatcher = SpawnDispatcher(s3_store(s3_bucket, Settings()), {}, lambda *call: started.append(call))
    assert sweep_bucket(Settings(), dispatcher) == {"tasks": ["intake:s1"], "redelivered": 0}
    assert started == [("intake", "s1", s3_bucket)]
