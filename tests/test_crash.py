"""A worker killed (a real subprocess, SIGKILL) in the middle of a phase: the sweeper finishes the job
after the lease runs out, and no phase output is ever half-written."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fakes import RunLog, make_fake_registry, photo
from functions.app import build_local
from infra.settings import Settings
from pipeline import layout
from pipeline.manifests import ResultManifest, RunManifest
from pipeline.phases import PHASES
from pipeline.state import job_status, load_plan, read_model, run_manifest

HERE = Path(__file__).resolve().parent


def test_killed_worker_is_replaced_after_its_lease(tmp_path: Path) -> None:
    bucket, runlog = tmp_path / "bucket", RunLog(tmp_path / "runs.log")
    setup = build_local(bucket, Settings())
    setup.store.put(layout.incoming_image_key("crash", "person", "jpg"), photo((200, 40, 40)))
    setup.store.put(layout.incoming_image_key("crash", "garment", "jpg"), photo((40, 40, 200)))

    worker = subprocess.Popen(
        [sys.executable, str(HERE / "crash_worker.py"), str(bucket), str(runlog.path), "crash",
         "--slow-phase", "fitting", "--slow-s", "8", "--lease-s", "2"],
        cwd=HERE.parent, env={**os.environ, "PYTHONPATH": str(HERE.parent)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while runlog.count("fitting") == 0:  # wait until fitting is under way ...
            assert worker.poll() is None, worker.stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the worker never started fitting"
            time.sleep(0.05)
        plan = load_plan(setup.store, "crash")
        fitting_prefix = layout.run_prefix("fitting", plan.run("fitting").key)
        while not any("angles/" in i.key for i in setup.store.list(fitting_prefix)):
            time.sleep(0.05)  # ... and has written part of its output
        time.sleep(1.5)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    assert worker.returncode == -signal.SIGKILL

    killed_claim = setup.store.head(layout.claim_key("fitting", plan.run("fitting").key))
    assert killed_claim is not None, "the dead worker's claim is still there"
    assert run_manifest(setup.store, "fitting", plan.run("fitting").key) is None
    partial = [i.key for i in setup.store.list(fitting_prefix) if "/angles/" in i.key]
    assert 0 < len(partial) < 8, "killed mid-phase: some outputs written, no manifest"

    recovery = build_local(bucket, Settings(lease_s=2), registry=make_fake_registry(runlog))
    started = time.monotonic()
    with recovery.runtime:
        assert recovery.runtime.run_until(
            lambda: job_status(recovery.store, load_plan(recovery.store, "crash")) != "running", timeout=60)
    waited = time.monotonic() - started
    assert waited >= 0.3, "the live-looking claim must be respected until its lease runs out"

    assert read_model(recovery.store, layout.result_manifest_key("crash"), ResultManifest) is not None
    assert runlog.count("fitting") == 2 and all(runlog.count(p.name) == 1 for p in PHASES if p.name != "fitting")
    for phase in PHASES:  # every output of every run is whole: its bytes match the manifest's hash
        manifest = read_model(recovery.store, layout.run_manifest_key(phase.name, plan.run(phase.name).key),
                              RunManifest)
        for entry in manifest.files:
            assert hashlib.sha256(recovery.store.get(entry.key)).hexdigest() == entry.sha256
    assert f":{worker.pid}:" not in run_manifest(recovery.store, "fitting", plan.run("fitting").key).worker
    assert setup.store.head(layout.claim_key("fitting", plan.run("fitting").key)) is None
    assert recovery.store.clean_temp(0) >= 0
    leftovers = [p for p in (bucket / ".dropfit" / "tmp").glob("*")] if (bucket / ".dropfit" / "tmp").exists() else []
    assert leftovers == []
