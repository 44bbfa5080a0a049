"""The jobs HTTP API as a client uses it: a real uvicorn server on 127.0.0.1, the local runtime running the jobs
(the test phases of tests/fakes.py), on a folder bucket and on S3 (moto's server). Every request goes over
HTTP; every result link is fetched and checked against the manifest."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

from events.outbound import StoreEventLog
from fakes import RunLog, make_fake_registry, photo
from functions.api import ApiConfig, create_api
from functions.api.auth import check_bind, key_hash
from functions.api.links import link_secret
from functions.api.server import ApiServer
from functions.app import build_local
from functions.handlers import Handlers
from functions.runtime import LocalRuntime
from infra.s3_store import S3Store
from infra.settings import Settings
from pipeline import layout
from pipeline.manifests import ResultManifest
from pipeline.phase_api import PhaseRegistry
from pipeline.state import read_model
from pipeline.storage import ObjectStore

KEY = "dfk_test-key-for-the-api"
AUTH = {"Authorization": f"Bearer {KEY}"}
RED, BLUE = photo((200, 40, 40)), photo((40, 40, 200), fmt="PNG")


@dataclass
class Served:
    url: str
    store: ObjectStore
    registry: PhaseRegistry
    server: ApiServer

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**AUTH, **kwargs.pop("headers", {})}
        return requests.request(method, urljoin(self.url, path), headers=headers, timeout=30, **kwargs)

    def restart(self) -> None:
        """A new server process's worth: a fresh app and server on the same store (nothing kept in memory)."""
        self.server.stop()
        self.server = start_api(self.store, self.registry)
        self.url = self.server.url


def start_api(store: ObjectStore, registry: PhaseRegistry, **options: Any) -> ApiServer:
    hashes = (key_hash(KEY),)
    config = ApiConfig(store, registry, key_hashes=hashes, poll_s=0.05, link_secret=link_secret(None, hashes),
                       **options)
    return ApiServer(create_api(config), "127.0.0.1", 0).start()


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Served]:
    yield from serve_folder(tmp_path, make_fake_registry(RunLog(tmp_path / "runs.log")))


@pytest.fixture
def slow_folder(tmp_path: Path) -> Iterator[Served]:
    registry = make_fake_registry(RunLog(tmp_path / "runs.log"), slow_phase="fitting", slow_s=3.0)
    yield from serve_folder(tmp_path, registry)


def serve_folder(tmp_path: Path, registry: PhaseRegistry) -> Iterator[Served]:
    local = build_local(tmp_path / "bucket", Settings(lease_s=5), registry=registry)
    local.runtime.start()
    server = start_api(local.store, local.registry)
    served = Served(server.url, local.store, local.registry, server)
    try:
        yield served
    finally:
        served.server.stop()
        local.runtime.stop(grace_s=2)


@pytest.fixture
def s3(s3_client: Any, s3_bucket: str, tmp_path: Path) -> Iterator[Served]:
    """The API on S3, and a worker that sweeps the bucket (S3 sends this process no events)."""
    store = S3Store(s3_client, s3_bucket)
    registry = make_fake_registry(RunLog(tmp_path / "runs.log"))
    runtime = LocalRuntime(Handlers(store, registry, StoreEventLog(store), lease_s=5), workers=2)
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            runtime.sweep()
            runtime.wait_idle(timeout=2)
            stop.wait(0.1)

    runtime.start()
    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    server = start_api(store, registry)
    served = Served(server.url, store, registry, server)
    try:
        yield served
    finally:
        served.server.stop()
        stop.set()
        worker.join(timeout=5)
        runtime.stop(grace_s=2)


def follow(served: Served, job_id: str, *, last_id: str | None = None,
           until: Callable[[list[dict[str, Any]]], bool] | None = None,
           timeout_s: float = 30) -> list[dict[str, Any]]:
    """The job's event stream as a client reads it: each event's id and data, until the server ends the stream
    (the job is terminal) or `until(events so far)` says stop (the client hangs up)."""
    headers = {**AUTH, **({"Last-Event-ID": last_id} if last_id else {})}
    events: list[dict[str, Any]] = []
    fields: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    with requests.get(urljoin(served.url, f"/v1/jobs/{job_id}/events"), headers=headers, stream=True,
                      timeout=timeout_s) as response:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines(chunk_size=None, decode_unicode=True):
            assert time.monotonic() < deadline, f"no end of the stream in {timeout_s} s: {events[-1:]}"
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
                continue
            if "data" in fields:
                events.append({"id": fields.get("id"), "event": fields.get("event"), **json.loads(fields["data"])})
                if until is not None and until(events):
                    return events
            fields = {}
    return events


def phases_done(*streams: list[dict[str, Any]]) -> list[str]:
    """The phases a client learnt were done, over its connections: a fresh stream's first event is the state
    then (its job's phases), every later event one change; resumed streams (the later ones) only changes."""
    done = []
    for n, events in enumerate(streams):
        for i, event in enumerate(events):
            if n == 0 and i == 0:
                assert event["phase"] is None, "a fresh stream starts with the state as it is"
                done += [p["name"] for p in event["job"]["phases"] if p["state"] == "done"]
            elif event.get("to") == "done":
                done.append(event["phase"])
    return done


def put_photos(served: Served, created: dict[str, Any], *, form: str | None = None) -> None:
    """Each photo to its upload target; `form`: that part through the presigned POST form instead (S3)."""
    for part, data in (("person", RED), ("garment", BLUE)):
        target = created["uploads"][part]
        if part == form:
            answer = requests.post(target["form"]["url"], data=target["form"]["fields"],
                                   files={"file": (part, data)}, timeout=30)
            assert answer.status_code == 204, answer.text
            continue
        answer = requests.request(target["method"], urljoin(served.url, target["url"]), data=data,
                                  headers={**target["headers"], **({} if target["form"] else AUTH)}, timeout=30)
        assert answer.status_code == 200, answer.text


def check_results(served: Served, job: dict[str, Any]) -> None:
    """Every result link answers the bytes the manifest lists (sha256 and size), the manifest's own too, with no
    key: the links are presigned (S3) or signed in their path (a folder), so a browser can open them."""
    assert job["state"] == "succeeded" and job["progress"] == 1.0, job
    manifest = read_model(served.store, layout.result_manifest_key(job["job_id"]), ResultManifest)
    assert manifest is not None
    assert {r["name"]: r["sha256"] for r in job["results"]} == {f.name: f.sha256 for f in manifest.files}
    assert manifest.cost is not None and job["cost"] == manifest.cost.model_dump(mode="json")
    for link in job["results"]:
        got = requests.get(link["url"], timeout=30)
        assert got.status_code == 200, (link, got.text)
        assert hashlib.sha256(got.content).hexdigest() == link["sha256"] and len(got.content) == link["size"]
    got = requests.get(job["manifest_url"], timeout=30)
    assert ResultManifest.model_validate_json(got.content) == manifest
    if isinstance(served.store, S3Store):
        return
    folder, _, name = job["manifest_url"].rpartition("/")
    forged = f"{folder[: folder.rindex('-') + 1]}{'0' * 32}/{name}"
    assert requests.get(forged, timeout=30).status_code == 403, "a link with another signature is refused"
    other = folder.replace(f"/v1/results/{job['job_id']}/", "/v1/results/someone-else/")
    assert requests.get(f"{other}/{name}", timeout=30).status_code == 403, "a job's signature opens only that job"
    plain = served.call("GET", f"/v1/jobs/{job['job_id']}/results/{name}")
    assert plain.status_code == 200 and plain.content == got.content, "with a key, the plain path serves it too"


@pytest.mark.parametrize("bucket", ["folder", "s3"])
def test_a_job_runs_end_to_end_over_http(bucket: str, request: pytest.FixtureRequest) -> None:
    served: Served = request.getfixturevalue(bucket)
    created = served.call("POST", "/v1/jobs", json={"garment": {"category": "upper"}},
                          params={"garment_format": "png"})
    assert created.status_code == 201, created.text
    body = created.json()
    job_id = body["job_id"]
    assert body["job"]["state"] == "waiting_for_inputs" and len(body["job"]["waiting_on"]) == 2
    assert json.loads(served.store.get(layout.incoming_spec_key(job_id))) == {"garment": {"category": "upper"}}
    if bucket == "s3":  # presigned straight to the bucket, content type signed; the size cap in the POST policy
        assert body["uploads"]["person"]["headers"] == {"Content-Type": "image/jpeg"}
        assert body["uploads"]["garment"]["url"].startswith(served.store.client.meta.endpoint_url)  # type: ignore[attr-defined]
        assert ["content-length-range", 1, 40 * 1024 * 1024] in json.loads(
            base64.b64decode(body["uploads"]["person"]["form"]["fields"]["policy"]))["conditions"]
        wrong = requests.put(body["uploads"]["person"]["url"], data=RED, headers={"Content-Type": "text/plain"},
                             timeout=30)
        assert wrong.status_code == 403 and "SignatureDoesNotMatch" in wrong.text, "S3 checks the signed type"
    else:
        assert body["uploads"]["person"]["url"] == f"/v1/jobs/{job_id}/person"
    put_photos(served, body, form="garment" if bucket == "s3" else None)
    events = follow(served, job_id)
    assert events[-1]["job"]["state"] == "succeeded"
    assert len({e["id"] for e in events}) == len(events), "every event id is new"
    assert sorted(phases_done(events)) == sorted(p.name for p in served.registry.table), events
    job = served.call("GET", f"/v1/jobs/{job_id}").json()
    assert [p["state"] for p in job["phases"]] == ["done"] * 4 and all(p["duration_s"] >= 0 for p in job["phases"])
    check_results(served, job)
    resumed = served.call("GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": events[-1]["id"]})
    assert resumed.status_code == 204, "resuming at the end: nothing more, and an EventSource stops asking"


def test_one_multipart_post_with_both_photos_runs_a_job(folder: Served) -> None:
    spec = json.dumps({"job_id": "shop-order-17", "person": {"height_cm": 172}})
    created = folder.call("POST", "/v1/jobs", data={"spec": spec},
                          files={"person": ("me.jpg", RED, "image/jpeg"), "garment": ("tee.png", BLUE, "image/png")})
    assert created.status_code == 201, created.text
    assert created.json()["job_id"] == "shop-order-17" and created.json()["job"]["state"] in ("queued", "running")
    assert sorted(i.key for i in folder.store.list("incoming/shop-order-17/")) == [
        "incoming/shop-order-17/garment.png", "incoming/shop-order-17/job.json", "incoming/shop-order-17/person.jpg"]
    events = follow(folder, "shop-order-17")
    check_results(folder, events[-1]["job"])


def test_an_idempotency_key_replays_the_same_job_and_refuses_another_body(folder: Served) -> None:
    first = folder.call("POST", "/v1/jobs", json={"garment": {"size": "M"}}, headers={"Idempotency-Key": "k-1"})
    again = folder.call("POST", "/v1/jobs", json={"garment": {"size": "M"}}, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.json()["job_id"] == first.json()["job_id"] and again.headers["Idempotent-Replayed"] == "true"
    other = folder.call("POST", "/v1/jobs", json={"garment": {"size": "L"}}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 409 and first.json()["job_id"] in other.json()["error"]
    assert "new Idempotency-Key" in other.json()["user_action"]
    jobs = {i.key.split("/")[1] for i in folder.store.list(layout.INCOMING)}
    assert jobs == {first.json()["job_id"]}, "one job, however often it was asked for"
    taken = folder.call("POST", "/v1/jobs", json={"job_id": first.json()["job_id"]})
    assert taken.status_code == 409 and "exists already" in taken.json()["error"]


def test_keys_are_required_and_checked_while_health_and_docs_stay_open(folder: Served) -> None:
    none = requests.get(urljoin(folder.url, "/v1/jobs/x"), timeout=10)
    assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in none.json()["user_action"]
    wrong = requests.get(urljoin(folder.url, "/v1/jobs/x"), headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 403 and wrong.json()["error"].startswith("this API key is not accepted")
    assert folder.call("GET", "/v1/jobs/x").status_code == 404
    assert requests.get(urljoin(folder.url, "/healthz"), timeout=10).json() == {"status": "ok"}
    ready = requests.get(urljoin(folder.url, "/readyz"), timeout=10)
    assert ready.status_code == 200 and ready.json()["checks"]["store"]["ok"]
    schema = requests.get(urljoin(folder.url, "/openapi.json"), timeout=10).json()
    assert {"/v1/jobs", "/v1/jobs/{job_id}/events", "/v1/batches", "/readyz"} <= set(schema["paths"])
    assert "multipart/form-data" in schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    assert requests.get(urljoin(folder.url, "/docs"), timeout=10).status_code == 200


def test_an_open_server_binds_to_loopback_only() -> None:
    assert "loopback" in check_bind("127.0.0.1", ())
    with pytest.raises(ValueError, match="DROPFIT_API_KEY_HASHES"):
        check_bind("0.0.0.0", ())
    assert "1 configured" in check_bind("0.0.0.0", (key_hash(KEY),))


def test_what_cannot_be_used_is_refused_at_upload_saying_what_to_do(folder: Served) -> None:
    job_id = folder.call("POST", "/v1/jobs", json={}).json()["job_id"]
    put = f"/v1/jobs/{job_id}/person"
    text = folder.call("PUT", put, data=b"<svg xmlns='http://www.w3.org/2000/svg'></svg>")
    assert text.status_code == 415 and "SVG" in text.json()["error"] and text.json()["user_action"]
    tiny = folder.call("PUT", put, data=photo((200, 40, 40), size=(32, 32)))
    assert tiny.status_code == 422 and "at least 64 pixels" in tiny.json()["error"]
    cut = folder.call("PUT", put, data=RED[: len(RED) // 2])
    assert cut.status_code == 422 and "not a readable image" in cut.json()["error"]
    big = folder.call("PUT", put, data=iter([b"\xff\xd8" + b"\0" * (8 << 20)] * 6))  # 48 MiB, chunked
    assert big.status_code == 413 and "40 MiB" in big.json()["error"]
    assert [i.key for i in folder.store.list(layout.incoming_prefix(job_id))] == [layout.incoming_spec_key(job_id)]
    field = folder.call("POST", "/v1/jobs", json={"garment": {"colour": "red"}})
    assert field.status_code == 422 and "garment.colour: unknown field" in field.json()["error"]
    bad_id = folder.call("POST", "/v1/jobs", json={"job_id": "../etc"})
    assert bad_id.status_code == 422 and "job id" in bad_id.json()["error"]
    wrong_type = folder.call("POST", "/v1/jobs", data=b"x", headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    huge = folder.call("POST", "/v1/jobs", data=b"{" + b" " * (2 << 20) + b"}",
                       headers={"Content-Type": "application/json"})
    assert huge.status_code == 413
    assert folder.call("PUT", "/v1/jobs/never-made/person", data=RED).status_code == 404
    before = {i.key for i in folder.store.list(layout.INCOMING)}
    gif = folder.call("POST", "/v1/jobs", json={}, params={"person_format": "gif"})
    assert gif.status_code == 422 and {i.key for i in folder.store.list(layout.INCOMING)} == before


def test_a_failed_job_says_why_and_what_to_do(folder: Served) -> None:
    created = folder.call("POST", "/v1/jobs", json={}).json()
    assert folder.call("PUT", created["uploads"]["garment"]["url"], data=BLUE).status_code == 200
    black = photo((0, 0, 0))  # the test avatar finds no one in it
    assert folder.call("PUT", created["uploads"]["person"]["url"], data=black).status_code == 200
    job = follow(folder, created["job_id"])[-1]["job"]
    assert job["state"] == "failed" and job["results"] == []
    error = json.loads(folder.store.get(layout.result_error_key(created["job_id"])))
    assert job["error"] == error and error["phase"] == "avatar" and "no person found" in error["reason"]
    assert error["user_action"] and job["phases"][0]["state"] == "failed"


def test_a_restart_of_the_server_mid_job_loses_no_event(slow_folder: Served) -> None:
    served = slow_folder
    created = served.call("POST", "/v1/jobs", json={}).json()
    put_photos(served, created)
    before = follow(served, created["job_id"], until=lambda events: "avatar" in phases_done(events))
    served.restart()  # the client's stream breaks here; it reconnects to the new server with its last id
    assert served.call("GET", f"/v1/jobs/{created['job_id']}").json()["state"] == "running", "restarted mid-job"
    after = follow(served, created["job_id"], last_id=before[-1]["id"])
    assert sorted(phases_done(before, after)) == sorted(p.name for p in served.registry.table), (before, after)
    assert after[-1]["job"]["state"] == "succeeded"
    check_results(served, after[-1]["job"])


def test_a_stream_cut_short_is_resumed_where_it_ended(slow_folder: Served) -> None:
    """Where a proxy cuts long requests (Modal: 150 s), streams end early on purpose; the client resumes."""
    created = slow_folder.call("POST", "/v1/jobs", json={}).json()
    put_photos(slow_folder, created)
    short = Served("", slow_folder.store, slow_folder.registry,
                   start_api(slow_folder.store, slow_folder.registry, stream_max_s=0.3))
    short.url = short.server.url
    try:
        first = follow(short, created["job_id"])
    finally:
        short.server.stop()
    assert first and first[-1]["job"]["state"] in ("queued", "running"), "ended before the job did"
    rest = follow(slow_folder, created["job_id"], last_id=first[-1]["id"])
    done = phases_done(first, rest)
    assert sorted(done) == sorted(p.name for p in slow_folder.registry.table) and rest[-1]["job"]["state"] == \
        "succeeded"


def test_a_batch_is_created_uploaded_committed_and_reported(folder: Served) -> None:
    created = folder.call("POST", "/v1/batches", json={
        "batch_id": "spring", "people": ["ann.jpg"], "garments": ["tee.png", "top.png"],
        "settings": {"garments": {"tee.png": {"category": "upper"}}}})
    assert created.status_code == 201, created.text
    uploads = created.json()["uploads"]
    assert sorted(uploads) == ["garments/tee.png", "garments/top.png", "people/ann.jpg"]
    assert folder.call("POST", "/v1/batches", json={"people": ["a.gif"], "garments": ["b.jpg"]}).status_code == 422
    typo = folder.call("POST", "/v1/batches", json={"people": ["a.jpg"], "garments": ["b.jpg"], "setings": {}})
    assert typo.status_code == 422 and "setings: unknown field" in typo.json()["error"]
    early = folder.call("POST", "/v1/batches/spring/commit")
    assert early.status_code == 409 and "misses 3 photo" in early.json()["error"]
    assert folder.store.head(layout.batch_marker_key("spring")) is None
    for name, data in (("people/ann.jpg", RED), ("garments/tee.png", BLUE), ("garments/top.png", BLUE)):
        assert folder.call("PUT", uploads[name]["url"], data=data).status_code == 200
    assert folder.call("POST", "/v1/batches/spring/commit").status_code == 202
    deadline = time.monotonic() + 30
    while (batch := folder.call("GET", "/v1/batches/spring").json())["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, batch
        time.sleep(0.1)
    replay = folder.call("POST", "/v1/batches", headers={"Idempotency-Key": "b-1"},
                         json={"people": ["ann.jpg"], "garments": ["tee.png"]})
    again = folder.call("POST", "/v1/batches", headers={"Idempotency-Key": "b-1"},
                        json={"people": ["ann.jpg"], "garments": ["tee.png"]})
    assert replay.status_code == again.status_code == 201 and replay.json()["batch_id"] == again.json()["batch_id"]
    assert folder.call("POST", "/v1/batches", headers={"Idempotency-Key": "b-1"},
                       json={"people": ["bob.jpg"], "garments": ["tee.png"]}).status_code == 409
    assert batch["state"] == "succeeded" and batch["report"]["total"] == 2 and set(batch["jobs"].values()) == {
        "succeeded"}


def test_readiness_says_when_the_store_does_not_answer(s3_client: Any, tmp_path: Path) -> None:
    store = S3Store(s3_client, "no-such-bucket-for-dropfit")
    server = start_api(store, make_fake_registry(RunLog(tmp_path / "runs.log")))
    try:
        ready = requests.get(f"{server.url}/readyz", timeout=10)
    finally:
        server.stop()
    assert ready.status_code == 503 and not ready.json()["checks"]["store"]["ok"]


def test_the_modal_endpoint_needs_a_key_and_serves_the_bucket(s3_env, monkeypatch, s3_bucket) -> None:
    import modal_deploy

    monkeypatch.setenv("DROPFIT_BUCKET", s3_bucket)
    with pytest.raises(ValueError, match="no API key is configured"):
        modal_deploy.api.local()
    monkeypatch.setenv("DROPFIT_API_KEY_HASHES", json.dumps([key_hash(KEY)]))
    with ApiServer(modal_deploy.api.local(), "127.0.0.1", 0) as server:
        ready = requests.get(f"{server.url}/readyz", timeout=10).json()
        assert ready["ready"] and ready["checks"]["store"]["bucket"] == s3_bucket, ready
        assert requests.get(f"{server.url}/v1/jobs/x", timeout=10).status_code == 401


def test_a_real_job_over_http_returns_the_pipelines_own_files(tmp_path: Path) -> None:
    """The product's CPU phases, not the test ones: the sample person and garment in one multipart POST, the
    event stream to the end, and the GLB and the eight angles fetched over HTTP, byte for byte the manifest's."""
    from pipeline.sample import sample_garment, sample_person

    local = build_local(tmp_path / "bucket", Settings())
    local.runtime.start()
    served = Served("", local.store, local.registry, start_api(local.store, local.registry))
    served.url = served.server.url
    try:
        created = served.call("POST", "/v1/jobs", data={"spec": json.dumps({"garment": {"category": "upper"}})},
                              files={"person": ("p.png", sample_person(), "image/png"),
                                     "garment": ("g.png", sample_garment(), "image/png")})
        assert created.status_code == 201, created.text
        events = follow(served, created.json()["job_id"], timeout_s=240)
        job = events[-1]["job"]
        names = {r["name"] for r in job["results"]}
        assert {"model.glb", "angles/000.png", "angles/315.png", "fit_report.json"} <= names, names
        check_results(served, job)
    finally:
        served.server.stop()
        local.runtime.stop(grace_s=5)


def test_a_signed_result_link_expires() -> None:
    from functions.api.errors import ApiError
    from functions.api.links import check, signed_folder

    secret = link_secret(None, (key_hash(KEY),))
    assert secret is not None and link_secret(None, ()) is None, "an open server signs nothing"
    token = signed_folder(secret, "job-1", 60, now=1000.0).split("/")[4]
    check(secret, "job-1", token, now=1059.0)
    with pytest.raises(ApiError, match="expired"):
        check(secret, "job-1", token, now=1061.0)


def test_dropfit_serve_says_who_may_call_it_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    import os
    import re
    import signal
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "300"}
    env.pop("DROPFIT_API_KEY_HASHES", None)
    command = [sys.executable, "-m", "functions.cli", "serve", "--bucket", str(tmp_path / "bucket")]
    refused = subprocess.run([*command, "--host", "0.0.0.0"], env=env, text=True, capture_output=True, timeout=60)
    assert refused.returncode == 2 and "only listen on loopback" in " ".join(refused.stderr.split())
    env["DROPFIT_API_KEY_HASHES"] = json.dumps([key_hash(KEY)])
    server = subprocess.Popen([*command, "--port", "0", "--log-level", "warning"], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        found = re.search(r"dropfit API on (http://127\.0\.0\.1:\d+)", first)
        assert found and "API keys required" in first, first
        url = found.group(1)
        assert requests.get(f"{url}/v1/jobs/x", timeout=10).status_code == 401
        assert requests.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
        assert "watching" in server.stdout.readline(), "it runs the jobs too"
    finally:
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=30)
    assert server.returncode == 0 and "stopping" in out, out
