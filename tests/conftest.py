"""Shared fixtures: a local AWS (moto server) and an object store parametrized over every implementation."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from bench.devdata import DEV_DATA, dev_photos
from infra.folder_store import FolderStore
from infra.s3_store import S3Store, client_config
from pipeline.storage import ObjectStore
from torchvision_cpu import enable as enable_torchvision

# Session-wide, before any test imports transformers or diffusers, so that every test sees the same torchvision
# (tests/torchvision_cpu.py): None when it imports, else why not (the tests that need it skip with this).
TORCHVISION_MISSING = enable_torchvision()

AWS_REGION = "us-east-1"
AWS_TEST_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass(frozen=True)
class LocalAws:
    """A running moto server: its endpoint, and clients with test credentials (never the user's)."""

    endpoint_url: str
    region: str = AWS_REGION

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            config=client_config(),
            **AWS_TEST_CREDENTIALS,
        )


MODAL_GUARD = {
    "MODAL_CONFIG_PATH": "/nonexistent/dropfit-tests/.modal.toml",  # no profile with a token
    "MODAL_SERVER_URL": "http://127.0.0.1:9",  # the discard port: a remote call fails at once
}


@pytest.fixture(scope="session", autouse=True)
def _no_modal_credentials() -> Iterator[None]:
    """Tests never reach Modal: no token, no config profile, and Modal's server pointed at a closed local
    port, so any remote call (`.remote`, `.spawn`) fails fast instead of hanging or leaving the machine."""
    saved = {name: os.environ.pop(name) for name in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET") if name in os.environ}
    replaced = {name: os.environ.get(name) for name in MODAL_GUARD}
    os.environ.update(MODAL_GUARD)
    yield
    for name, value in replaced.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    os.environ.update(saved)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[LocalAws]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield LocalAws(endpoint_url=f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_client(moto_server: LocalAws) -> Any:
    return moto_server.client("s3")


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    name = f"dropfit-test-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def folder_store(tmp_path: Path) -> FolderStore:
    return FolderStore(tmp_path / "bucket")


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "folder":
        return FolderStore(tmp_path / "bucket")
    return S3Store(request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket"))


# ---- the development photos (../shared/data/tryon; never copied into the repo) ------------------------

def _require(kind: str) -> list[Path]:
    photos = dev_photos(kind)
    if not photos:
        pytest.skip(f"the development photos are absent ({DEV_DATA}/{kind}); set DROPFIT_DEV_DATA to use them")
    return photos


@pytest.fixture(scope="session")
def dev_people() -> list[Path]:
    return _require("people")


@pytest.fixture(scope="session")
def dev_garments() -> list[Path]:
    return _require("garments")


@pytest.fixture
def s3_env(moto_server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment a Modal function reads (Settings, boto3) pointed at the moto server."""
    for name, value in {"DROPFIT_S3_ENDPOINT_URL": moto_server.endpoint_url, "DROPFIT_AWS_REGION": "us-east-1",
                        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)


def job_finished(store: ObjectStore, job_id: str) -> bool:
    """Has the job ended (succeeded or failed) and told its subscribers? (Ended alone is not enough for a test
    that reads the job's events next: they are written just after.)"""
    from pipeline.state import job_settled, load_plan

    plan = load_plan(store, job_id)
    return plan is not None and job_settled(store, plan)


def run_sample_job(app: Any, job_id: str) -> Any:
    """The built-in sample person and garment through a local app (`functions.app.build_local`) to the end; the
    result manifest (the job's error.json in the failure message when there is none)."""
    from pipeline import layout
    from pipeline.manifests import ResultManifest
    from pipeline.sample import sample_garment, sample_person
    from pipeline.state import read_model

    with app.runtime:
        app.store.put(layout.incoming_image_key(job_id, "person", "png"), sample_person())
        app.store.put(layout.incoming_image_key(job_id, "garment", "png"), sample_garment())
        assert app.runtime.run_until(lambda: job_finished(app.store, job_id), timeout=240)
    manifest = read_model(app.store, layout.result_manifest_key(job_id), ResultManifest)
    assert manifest is not None, (app.store.root / layout.result_error_key(job_id)).read_text()
    return manifest


def fresh_thread_count() -> int:
    """The count a thread that starts using torch now gets (the count set last, from any thread)."""
    import threading

    import torch

    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return seen[0]


LOCAL_VOLUME_WARNING = "ignore:.*executing locally.*:UserWarning"  # Modal's .local() has no volume, by design


def plan_sample_job_on_s3(s3_client: Any, bucket: str, job_id: str) -> tuple[S3Store, Any]:
    """The built-in sample person and garment uploaded under incoming/{job_id}/ and planned by the Modal app's
    task function (`run_task.local("intake")`): the store and the job's plan."""
    import modal_deploy
    from pipeline.sample import sample_garment, sample_person
    from pipeline.state import load_plan

    s3_client.put_object(Bucket=bucket, Key=f"incoming/{job_id}/person.png", Body=sample_person())
    s3_client.put_object(Bucket=bucket, Key=f"incoming/{job_id}/garment.png", Body=sample_garment())
    assert modal_deploy.run_task.local("intake", job_id, bucket)["detail"] == "planned"
    store = S3Store(s3_client, bucket)
    return store, load_plan(store, job_id)
