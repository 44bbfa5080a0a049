"""Files that would wait forever unseen: each is listed with what is wrong and what to do, and `dropfit status`
shows them, the jobs waiting for a photo, and the subscriber deliveries still pending."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from events.webhooks import Attempt, DeliveryRecord
from fakes import photo
from functions.status import StatusTables, job_detail, jobs_table, next_attempt, shown_target
from infra.folder_store import FolderStore
from infra.settings import Settings
from pipeline import layout
from pipeline.registry import product_registry
from pipeline.storage import ObjectInfo
from pipeline.stray import Stray, find_strays

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(hours=1)


def strays(*keys: str, at: datetime = LONG_AGO, wait_s: float = 600) -> dict[str, tuple[str, str]]:
    found = find_strays([ObjectInfo(k, "e", 1, at) for k in keys], NOW, wait_s)
    return {s.key: (s.problem, s.fix) for s in found}


CASES = {
    "directly under incoming/": ("incoming/person.jpg", "incoming/person.jpg", (
        "files directly under incoming/ are never read: each job has a folder of its own",
        "move it to incoming/<job id>/person.jpg")),
    "one folder too deep": ("incoming/a/b/person.jpg", "incoming/a/b/person.jpg", (
        "it is in a folder inside the job's folder (a/b/): intake reads files directly in incoming/<job id>/",
        "move it to incoming/b/person.jpg")),
    "hidden job id": ("incoming/.j/person.jpg", "incoming/.j/", (
        "the job id '.j' is not usable: it starts with '.', which marks hidden and internal folders",
        "rename the folder to incoming/j/")),
    "underscore job id": ("incoming/_j/person.jpg", "incoming/_j/", (
        "the job id '_j' is not usable: it starts with '_', which marks hidden and internal folders",
        "rename the folder to incoming/j/")),
    "reserved job id": ("incoming/batches/person.jpg", "incoming/batches/", (
        "the job id 'batches' is not usable: 'batches' is reserved", "rename the folder to incoming/batches-1/")),
    "too long": ("incoming/" + "x" * 129 + "/person.jpg", "incoming/" + "x" * 129 + "/", (
        f"the job id {'x' * 129!r} is not usable: it is 129 characters long; the most is 128",
        f"rename the folder to incoming/{'x' * 128}/")),
    "trailing space": ("incoming/j1 /person.jpg", "incoming/j1 /", (
        "the job id 'j1 ' is not usable: it starts or ends with a space", "rename the folder to incoming/j1/")),
    "hidden batch id": ("catalog/.b/people/a.jpg", "catalog/.b/", (
        "the batch id '.b' is not usable: it starts with '.', which marks hidden and internal folders",
        "rename the folder to catalog/b/")),
    "unclear name": ("incoming/j/me.jpg", "incoming/j/me.jpg", (
        "'me.jpg' is not a name intake reads, and it cannot tell whether it is the person or the garment",
        "rename it to incoming/j/person.jpg (the person) or garment.jpg (the garment)")),
    "two extensions": ("incoming/j/person.jpeg.jpg", "incoming/j/person.jpeg.jpg", (
        "'person.jpeg.jpg' has two extensions", "rename it to incoming/j/person.jpg")),
    "HEIC": ("incoming/j/person.heic", "incoming/j/person.heic", (
        "'person.heic' is a HEIC file: only JPEG, PNG and WebP photos are read",
        "convert it to JPEG and upload it as incoming/j/person.jpg")),
    "a browser's copy": ("incoming/j/garment (1).png", "incoming/j/garment (1).png", (
        "'garment (1).png' is not a name intake reads: the garment photo must be named garment.png",
        "rename it to incoming/j/garment.png")),
    "no extension": ("incoming/j/garment", "incoming/j/garment", (
        "'garment' has no extension", "rename it to incoming/j/garment.jpg")),
    "batch marker in capitals": ("catalog/b/Batch.JSON", "catalog/b/Batch.JSON", (
        "'Batch.JSON' is not read: the marker must be named batch.json, in lower case",
        "rename it to catalog/b/batch.json")),
    "catalog folder name": ("catalog/b/People/a.jpg", "catalog/b/People/a.jpg", (
        "photos go directly in catalog/b/people/", "move it to catalog/b/people/a.jpg")),
    "photo beside batch.json": ("catalog/b/a.jpg", "catalog/b/a.jpg", (
        "files directly in a batch's folder are not read (except batch.json)",
        "move it to catalog/b/people/a.jpg or catalog/b/garments/a.jpg")),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_stray_file_says_what_is_wrong_and_what_to_rename_it_to(case: tuple[str, str, tuple[str, str]]) -> None:
    key, listed, answer = case
    found = strays(key, "catalog/b/batch.json", at=NOW)  # fresh files: nothing is "waiting" yet
    assert found == {listed: answer}


def test_names_whose_intent_is_plain_are_read_not_listed() -> None:
    assert strays("incoming/j/Person.JPG", "incoming/j/GARMENT.jpeg", "incoming/j/Job.json", at=NOW) == {}
    assert layout.parse_incoming("incoming/j/Person.JPG") == layout.IncomingKey("j", "person")


def test_hidden_files_and_folder_placeholders_are_not_listed() -> None:
    assert strays("incoming/j/.DS_Store", "incoming/j/", "incoming/.DS_Store", "catalog/b/._a.jpg", at=NOW) == {}


def test_the_files_of_a_folder_with_a_bad_id_make_one_entry() -> None:
    assert list(strays("incoming/.j/person.jpg", "incoming/.j/garment.jpg", at=NOW)) == ["incoming/.j/"]


def test_a_job_with_one_photo_for_longer_than_the_wait_is_reported_waiting() -> None:
    assert strays("incoming/j/person.jpg", at=NOW - timedelta(minutes=5)) == {}
    assert strays("incoming/j/person.jpg", "incoming/j/job.json", at=NOW - timedelta(minutes=12)) == {
        "incoming/j/": ("waiting for the garment photo for 12 min (it has job.json, person.jpg)",
                        "upload incoming/j/garment.jpg (or .png, .webp): the job starts when it arrives")}
    assert strays("incoming/k/job.json", wait_s=60) == {
        "incoming/k/": ("waiting for the person photo and the garment photo for 60 min (it has job.json)",
                        "upload incoming/k/person.jpg and garment.jpg: the job starts when both are there")}
    assert strays("incoming/j/person.jpg", "incoming/j/garment.jpg") == {}


def test_a_batch_with_photos_and_no_marker_is_reported_waiting() -> None:
    assert strays("catalog/b/people/a.jpg", "catalog/b/garments/g.jpg") == {
        "catalog/b/": ("2 photos, but no batch.json for 60 min: a batch starts only when batch.json is written",
                       "write catalog/b/batch.json ({} is enough) once every photo is uploaded")}
    assert strays("catalog/b/people/a.jpg", "catalog/b/garments/g.jpg", "catalog/b/batch.json") == {}


def test_a_stray_is_a_plain_record_an_api_can_return() -> None:
    stray = find_strays([ObjectInfo("incoming/x.jpg", "e", 1, NOW)], NOW, 600)[0]
    assert isinstance(stray, Stray) and stray.key == "incoming/x.jpg" and stray.problem and stray.fix


# ---- dropfit status ---------------------------------------------------------------------------------


def rendered(table: StatusTables) -> str:
    console = Console(record=True, width=400)
    console.print(table)
    return console.export_text()


def pending_record(job_id: str) -> DeliveryRecord:
    attempt = Attempt(number=3, at=NOW - timedelta(minutes=1), outcome="retry", status=503, error=None,
                      duration_ms=12.0)
    return DeliveryRecord(event_id=f"{job_id}:h:failed", event_type="dropfit.job.failed", job_id=job_id,
                          message_id="msg_1", channel="webhook-abc", kind="webhook",
                          target="https://hooks.example.com/dropfit?token=secret", per_job=True, body="{}",
                          attempts=(attempt, attempt, attempt), next_attempt_at=NOW + timedelta(minutes=8))


def test_status_lists_stray_files_waiting_jobs_and_pending_deliveries(folder_store: FolderStore) -> None:
    folder_store.put("incoming/j1/person.jpg", photo((200, 40, 40)))
    folder_store.put("incoming/j1/me.jpg", photo((40, 40, 200)))
    folder_store.put("incoming/.hidden/person.jpg", photo((200, 40, 40)))
    key = layout.delivery_key("j0", "msg_1", "webhook-abc")
    folder_store.put(key, pending_record("j0").to_bytes())
    folder_store.put(layout.outbox_key(key), key.encode())
    later = datetime.now(UTC) + timedelta(hours=1)
    text = rendered(jobs_table(folder_store, product_registry(), settings=Settings(), now=later))
    assert "waiting for the garment photo" in text
    assert "incoming/.hidden/" in text and "rename the folder to incoming/hidden/" in text
    assert "'me.jpg' is not a name intake reads" in text
    assert "waiting for the garment photo for 60 min (it has person.jpg)" in text
    assert "subscriber deliveries pending" in text
    assert "webhook https://hooks.example.com/dropfit" in text and "secret" not in text
    assert "HTTP 503" in text
    detail = rendered(job_detail(folder_store, product_registry(), "j1", now=later))
    assert "'me.jpg' is not a name intake reads" in detail and "waiting for the garment photo for 60 min" in detail


def test_status_without_anything_to_see_prints_the_jobs_table_alone(folder_store: FolderStore) -> None:
    folder_store.put("incoming/j1/person.jpg", photo((200, 40, 40)))
    text = rendered(jobs_table(folder_store, product_registry(), now=NOW - timedelta(days=1)))
    assert "files not picked up" not in text and "deliveries" not in text


def test_a_delivery_target_is_shown_without_its_secrets() -> None:
    assert shown_target("https://user:pw@example.com:8443/hook?token=t#x") == "https://example.com:8443/hook"
    assert shown_target("arn:aws:sns:us-east-1:123:topic") == "arn:aws:sns:us-east-1:123:topic"
    assert next_attempt(NOW + timedelta(minutes=5), NOW) == "2025-06-01 12:05:00 UTC (in 5 min)"
    assert next_attempt(NOW - timedelta(seconds=1), NOW) == "2025-06-01 11:59:59 UTC (due: the next sweep tries it)"


def test_status_lists_files_intake_never_reads_and_jobs_waiting_for_a_photo(tmp_path: Path) -> None:
    job = tmp_path / "b/incoming/j1"
    job.mkdir(parents=True)
    (job / "Person.JPG").write_bytes(photo((200, 40, 40)))  # read as person.jpg
    (job / "me.jpg").write_bytes(photo((40, 40, 200)))
    (tmp_path / "b/incoming/garment.jpg").write_bytes(photo((40, 40, 200)))
    env = {**os.environ, "COLUMNS": "300", "DROPFIT_WAITING_AFTER_S": "0.001"}
    result = subprocess.run([sys.executable, "-m", "functions.cli", "status", "b"], cwd=tmp_path, env=env, text=True,
                            capture_output=True, timeout=120)  # the CLI as a user runs it
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "j1 │ waiting for the garment photo" in out
    assert "files not picked up, and jobs waiting for a file" in out
    assert "'me.jpg' is not a name intake reads" in out and "rename it to incoming/j1/person.jpg" in out
    assert "incoming/garment.jpg" in out and "move it to incoming/<job id>/garment.jpg" in out
    assert "waiting for the garment photo for" in out and "(it has Person.JPG)" in out
