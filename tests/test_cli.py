"""The CLI as a user runs it: real subprocesses on a real folder bucket."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from fakes import photo
from pipeline.sample import sample_garment, sample_person

ROOT = Path(__file__).resolve().parent.parent


def dropfit(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "DROPFIT_LEASE_S": "5"}
    return subprocess.run([sys.executable, "-m", "functions.cli", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout)


def interrupt(watcher: subprocess.Popen[str], *, timeout: float = 60) -> str:
    """Ctrl-C to a `dropfit watch` subprocess; its whole output. A watcher still running after `timeout` fails
    the test with the end of its output (the stop deadline's stack dump shows where it hung)."""
    watcher.send_signal(signal.SIGINT)
    try:
        output, _ = watcher.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        watcher.kill()
        output, _ = watcher.communicate()
        raise AssertionError(f"Ctrl-C did not stop the watcher:\n{output[-3000:]}") from None
    return output


def test_help_teaches_the_layout_and_commands(tmp_path: Path) -> None:
    result = dropfit("--help", cwd=tmp_path)
    assert result.returncode == 0
    for word in ("incoming/", "results/", "run", "watch", "status", "sweep", "demo"):
        assert word in result.stdout
    run_help = dropfit("run", "--help", cwd=tmp_path).stdout
    assert "Exit codes" in run_help and "--job-spec" in run_help


def test_demo_runs_on_a_fresh_folder_and_points_at_the_results(tmp_path: Path) -> None:
    result = dropfit("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded" in result.stdout and "model.glb" in result.stdout and "contact_sheet.jpg" in result.stdout
    assert "fit: size" in result.stdout and "identity at 000: distance" in result.stdout
    assert "W0000" not in result.stderr and "XNNPACK" not in result.stderr  # no native start-up noise
    results = tmp_path / "dropfit-demo/results/demo"
    succeeded = next(line for line in result.stdout.splitlines() if line.startswith("succeeded"))
    assert succeeded.endswith((results / "index.html").resolve().as_uri())  # the page, first
    manifest = json.loads((results / "manifest.json").read_text())
    assert set(manifest["phases"]) == {"avatar", "wardrobe", "fitting", "viewer3d"}
    assert (results / "model.glb").read_bytes()[:4] == b"glTF" and (results / "angles/315.png").is_file()
    again = dropfit("demo", cwd=tmp_path)
    assert again.returncode == 0 and "✓ intake" not in again.stdout  # same inputs: no new work


def test_run_reports_an_unreadable_photo_with_exit_1(tmp_path: Path) -> None:
    (tmp_path / "person.jpg").write_bytes(b"not an image")
    (tmp_path / "garment.jpg").write_bytes(photo((40, 40, 200)))
    result = dropfit("run", "person.jpg", "garment.jpg", "--bucket", "b", "--job-id", "bad", cwd=tmp_path)
    assert result.returncode == 1
    assert "failed in intake" in result.stdout and "not a readable image" in result.stdout
    error = json.loads((tmp_path / "b/results/bad/error.json").read_text())
    assert error["phase"] == "intake" and error["user_action"]


def test_run_refuses_a_photo_with_no_person_with_exit_1_and_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "wall.png").write_bytes(photo((200, 200, 196), fmt="PNG"))
    (tmp_path / "g.jpg").write_bytes(sample_garment())
    result = dropfit("run", "wall.png", "g.jpg", "--bucket", "b", "--job-id", "wall", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed in avatar" in result.stdout and "no person found" in result.stdout
    assert "one standing person" in result.stdout


def test_run_with_a_job_spec_succeeds_and_status_shows_it(tmp_path: Path) -> None:
    (tmp_path / "p.png").write_bytes(sample_person())
    (tmp_path / "g.jpg").write_bytes(photo((40, 40, 200)))
    (tmp_path / "job.json").write_text(json.dumps({"person": {"height_cm": 180}}))
    result = dropfit("run", "p.png", "g.jpg", "--bucket", "b", "--job-spec", "job.json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded" in result.stdout
    assert (tmp_path / "b/incoming").is_dir()
    job_id = next((tmp_path / "b/incoming").iterdir()).name
    assert (tmp_path / f"b/incoming/{job_id}/person.png").is_file()
    table = dropfit("status", "b", cwd=tmp_path).stdout
    assert job_id in table and "succeeded" in table
    detail = dropfit("status", "b", job_id, cwd=tmp_path).stdout
    assert "viewer3d" in detail and "done" in detail and "unavailable" not in detail


def test_run_refuses_a_missing_file_and_a_bad_extension(tmp_path: Path) -> None:
    (tmp_path / "g.gif").write_bytes(b"GIF89a")
    result = dropfit("run", "missing.jpg", "g.gif", "--bucket", "b", cwd=tmp_path)
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_watch_picks_up_files_copied_into_the_folder(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    env = {**os.environ, "DROPFIT_SWEEP_INTERVAL_S": "30"}
    watcher = subprocess.Popen([sys.executable, "-m", "functions.cli", "watch", str(bucket)], cwd=tmp_path,
                               env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (bucket / "incoming").exists() and time.monotonic() < deadline:
            if (bucket).exists():
                break
            time.sleep(0.1)
        time.sleep(1.0)  # the observer is up once the bucket exists and the sweep ran
        (tmp_path / "src").mkdir()
        (tmp_path / "src/person.jpg").write_bytes(photo((200, 40, 40)))
        (tmp_path / "src/garment.jpg").write_bytes(photo((40, 40, 200)))
        (bucket / "incoming/w1").mkdir(parents=True)
        shutil.copy(tmp_path / "src/person.jpg", bucket / "incoming/w1/person.jpg")
        shutil.copy(tmp_path / "src/garment.jpg", bucket / "incoming/w1/garment.jpg")
        plan = bucket / "work/jobs/w1/plan.json"
        while not plan.exists() and time.monotonic() < deadline + 30:
            assert watcher.poll() is None
            time.sleep(0.1)
        assert plan.exists(), "the watcher did not plan the dropped job"
    finally:
        output = interrupt(watcher)
    assert "watching" in output and "intake" in output
    assert watcher.returncode in (0, 130), output[-3000:]


def test_run_with_a_dev_pair_publishes_the_results(tmp_path: Path, dev_people: list[Path],
                                                   dev_garments: list[Path]) -> None:
    result = dropfit("run", str(dev_people[0]), str(dev_garments[0]), "--bucket", "b", "--job-id", "dev",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    plan = json.loads((tmp_path / "b/work/jobs/dev/plan.json").read_text())
    for phase in ("avatar", "wardrobe"):
        manifest = json.loads((tmp_path / f"b/work/{phase}/{plan['runs'][phase]['key']}/_manifest.json").read_text())
        assert {"overlay.png"} <= {f["name"] for f in manifest["files"]}
    assert (tmp_path / "b/results/dev/model.glb").is_file()


def test_simple_mistakes_get_a_readable_refusal_with_exit_2_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "p.jpg").write_bytes(photo((200, 40, 40)))
    (tmp_path / "g.jpg").write_bytes(photo((40, 40, 200)))
    (tmp_path / "specs").mkdir()
    (tmp_path / "afile").write_text("not a folder")
    cases = [
        (("run", "p.jpg", "g.jpg", "--job-spec", "missing.json"), "does not exist"),
        (("run", "p.jpg", "g.jpg", "--job-spec", "specs"), "is a folder"),
        (("run", "p.jpg", "specs.jpg", "--bucket", "b"), "does not exist"),
        (("run", "p.jpg", "g.jpg", "--bucket", "afile"), "a bucket is a folder"),
        (("run", "p.jpg", "g.jpg", "--bucket", "afile/inside"), "afile is a file"),
        (("sweep", "afile"), "a bucket is a folder"),
        (("status", "afile"), "a bucket is a folder"),
        (("watch", "afile"), "a bucket is a folder"),
    ]
    for args, says in cases:
        result = dropfit(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert says in " ".join(result.stderr.split()) and "Traceback" not in result.stderr, (args, result.stderr)
    assert (tmp_path / "afile").read_text() == "not a folder"


def test_ctrl_c_stops_watch_promptly_though_a_phase_never_ends(tmp_path: Path) -> None:
    """Nothing new is taken at once, what waits is left (still due in storage), the stuck run gets a short
    grace and then its claim is released for the next worker: the watcher exits instead of waiting for ever."""
    from fakes import RunLog

    bucket, runlog = tmp_path / "bucket", RunLog(tmp_path / "runs.log")
    watcher = subprocess.Popen([sys.executable, str(ROOT / "tests/watch_worker.py"), str(bucket), str(runlog.path)],
                               cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (bucket / ".dropfit").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # the observer is up once the bucket exists and the first sweep ran
        (tmp_path / "src").mkdir()
        jobs = (("stuck", (200, 40, 40), {"person": {"height_cm": 199}}), ("next", (40, 200, 40), {}))
        for job, colour, spec in jobs:
            (tmp_path / "src" / f"{job}.json").write_text(json.dumps(spec))
            (tmp_path / "src" / f"{job}.jpg").write_bytes(photo(colour))
            (bucket / "incoming" / job).mkdir(parents=True)
            shutil.copy(tmp_path / "src" / f"{job}.json", bucket / "incoming" / job / "job.json")
            shutil.copy(tmp_path / "src" / f"{job}.jpg", bucket / "incoming" / job / "person.jpg")
            shutil.copy(tmp_path / "src" / f"{job}.jpg", bucket / "incoming" / job / "garment.jpg")
        while runlog.count("stuck") == 0:
            assert watcher.poll() is None, watcher.stdout.read() if watcher.stdout else ""
            assert time.monotonic() < deadline + 60, "the stuck phase never started"
            time.sleep(0.1)
        claims = list((bucket / "work/avatar").glob("*/_claim.json"))
        assert claims, "the stuck run holds its claim"
    finally:
        output = interrupt(watcher)
    assert watcher.returncode in (0, 130), output
    assert "still finishing: avatar (job stuck)" in output and "released the claims of avatar (job stuck)" in output
    assert not any(claim.exists() for claim in claims), "the stuck run's claim is left for the next worker"


def test_watch_redelivers_what_is_due_between_its_sweeps(tmp_path: Path) -> None:
    """A subscriber that was down: its delivery waits in work/outbox/, and the watcher retries it when due, on
    the backoff's schedule, not only at its (here: ten-minute) sweeps."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    got: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            got.append(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    bucket = tmp_path / "bucket"
    key = refused_once(bucket, url, due_in_s=3)
    env = {**os.environ, "DROPFIT_SWEEP_INTERVAL_S": "600", "DROPFIT_WEBHOOK_URLS": json.dumps([url]),
           "DROPFIT_WEBHOOK_SECRET": WEBHOOK_SECRET}
    watcher = subprocess.Popen([sys.executable, "-m", "functions.cli", "watch", str(bucket)], cwd=ROOT, env=env,
                               text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while not got and time.monotonic() < deadline:
            assert watcher.poll() is None
            time.sleep(0.2)
    finally:
        output = interrupt(watcher)
        server.shutdown()
        server.server_close()
    assert len(got) == 1, output[-3000:]
    record = json.loads((bucket / key).read_text())
    assert record["state"] == "delivered" and [a["status"] for a in record["attempts"]] == [503, 204]


WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def refused_once(bucket: Path, url: str, *, due_in_s: int) -> str:
    """A job's delivery to the operator's webhook `url` that was refused once (503, Retry-After) and is due in
    `due_in_s`: the record's key."""
    from datetime import UTC, datetime

    from events.outbound import job_event
    from infra.folder_store import FolderStore
    from infra.publishers import WebhookChannel
    from infra.subscribers import Outbox, RetryPolicy
    from infra.webhook_client import HttpReply, Target

    class Refuses:
        def post(self, target: Target, body: bytes, headers: dict[str, str], timeout: float) -> HttpReply:
            return HttpReply(503, {"retry-after": str(due_in_s)})

    box = Outbox(FolderStore(bucket), RetryPolicy(inline_budget_s=0.0), clock=lambda: datetime.now(UTC))
    channel = WebhookChannel(url, (WEBHOOK_SECRET,), per_job=False, poster=Refuses())
    event = job_event("bucket", "down", "plan0", False, {"phase": "avatar", "reason": "r", "user_action": "a"})
    opened = box.open(event, channel, per_job=False)
    assert opened is not None
    assert box.deliver(*opened, channel, budget_s=0.0).state == "pending"
    return opened[0]
