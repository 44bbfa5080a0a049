"""The Modal app imports offline with no credentials, and its function runs the same handlers through
`.local()` against S3 on moto. Remote calls are never attempted (conftest's guard makes them fail fast)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakes import photo
from pipeline import layout
from pipeline.state import load_plan

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


@pytest.fixture
def s3_env(moto_server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"DROPFIT_S3_ENDPOINT_URL": moto_server.endpoint_url, "DROPFIT_AWS_REGION": "us-east-1",
                        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)


def test_run_task_runs_the_same_handlers_locally_against_s3(s3_env, s3_client, s3_bucket) -> None:
    import modal_deploy
    from infra.s3_store import S3Store

    s3_client.put_object(Bucket=s3_bucket, Key="incoming/m1/person.jpg", Body=photo((200, 40, 40)))
    s3_client.put_object(Bucket=s3_bucket, Key="incoming/m1/garment.jpg", Body=photo((40, 40, 200)))
    first = modal_deploy.run_task.local("intake", "m1", s3_bucket)
    assert (first["outcome"], first["detail"]) == ("done", "planned")
    plan = load_plan(S3Store(s3_client, s3_bucket), "m1")
    assert plan is not None and set(plan.runs) == {"avatar", "wardrobe", "fitting", "viewer3d"}
    assert modal_deploy.run_task.local("intake", "m1", s3_bucket)["outcome"] == "skipped"
    avatar = modal_deploy.run_task.local("avatar", plan.run("avatar").key, s3_bucket)
    assert avatar["outcome"] == "unavailable" and "not in this build" in avatar["detail"]
    assert s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=layout.claim_key("avatar", plan.run("avatar").key))[
        "KeyCount"] == 0, "the claim is released when the phase is not available"


@pytest.mark.timeout(60)
def test_a_remote_call_from_a_test_fails_at_once_without_reaching_modal() -> None:
    import modal

    import modal_deploy

    started = time.monotonic()
    with pytest.raises(modal.exception.ExecutionError, match="not been hydrated"):
        modal_deploy.run_task.spawn("intake", "x", "bucket")
    assert time.monotonic() - started < 5
