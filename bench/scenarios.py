"""The runs of the spine benchmark, each on a fresh folder bucket with the fake phases of tests/fakes.py.

- `sequential`: jobs one at a time (put both inputs, wait until the runtime is idle), then timings per job;
- `duplicates`: after that, every event a finished job produced, re-delivered `repeats` times each;
- `throughput`: all jobs' inputs put at once, then wait for all results;
- `put_cost`: what one small put costs on the bucket's disk, the unit most orchestration is made of.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.timeline import JobTiming, Timeline, job_keys, job_timing, key_kind
from functions.app import LocalApp, build_local
from infra.folder_store import STATE_DIR, FolderStore
from infra.settings import Settings
from pipeline import layout
from pipeline.phases import PHASES
from tests.fakes import RunLog, make_fake_registry, photo


@dataclass(frozen=True)
class Bench:
    """One benchmark bucket: the app, its probes and the fake phases' run log."""

    app: LocalApp
    timeline: Timeline
    runlog: RunLog
    idle_timeout_s: float

    def wait_idle(self) -> None:
        if not self.app.runtime.wait_idle(self.idle_timeout_s):
            raise TimeoutError(f"the runtime was still busy after {self.idle_timeout_s:.0f} s")

    def phase_runs(self) -> dict[str, int]:
        return {p.name: self.runlog.count(p.name) for p in PHASES}

    def files(self) -> dict[str, int]:
        """Objects in the bucket, and the per-key lock files the folder store keeps beside them."""
        root = self.app.store.root
        objects = sum(1 for _ in self.app.store.list(""))
        return {"objects": objects, "lock_files": len(os.listdir(root / STATE_DIR / "locks"))}


def open_bench(folder: Path, *, phase_s: float, workers: int, idle_timeout_s: float) -> Bench:
    folder.mkdir(parents=True)
    timeline = Timeline()
    runlog = RunLog(folder / "runs.log")
    registry = timeline.wrap(make_fake_registry(runlog, delay_s=phase_s))
    settings = Settings(workers=workers)
    app = build_local(folder / "bucket", settings, registry=registry, on_outcome=timeline.on_outcome,
                      on_start=timeline.on_start)
    app.store.subscribe(timeline.on_event)
    return Bench(app, timeline, runlog, idle_timeout_s)


def job_inputs(index: int) -> tuple[bytes, bytes]:
    """Distinct person and garment photos for job `index`: different colours and widths, so no two jobs
    share a content-keyed run (the report checks it against the run log: `checks.shared_runs`)."""
    a, b = 40 + 8 * (index % 25), 40 + 8 * (index // 25 % 25)
    width = 96 + index % 64
    return photo((a, b, 200), size=(width, 128)), photo((200, a, b), size=(width, 128))


def put_job(bench: Bench, job_id: str, index: int) -> float:
    """Put a job's two inputs; returns time.time() just before the first put."""
    person, garment = job_inputs(index)
    put_at = time.time()
    bench.app.store.put(layout.incoming_image_key(job_id, "person", "jpg"), person)
    bench.app.store.put(layout.incoming_image_key(job_id, "garment", "jpg"), garment)
    return put_at


@dataclass
class SequentialRun:
    timings: list[JobTiming] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)


def sequential(bench: Bench, jobs: int, warmup: int) -> SequentialRun:
    """Jobs one at a time. The first `warmup` jobs (cold imports, first image decode) are not timed."""
    run = SequentialRun()
    for index in range(warmup + jobs):
        job_id = f"seq-{index:04d}"
        put_at = put_job(bench, job_id, index)
        bench.wait_idle()
        if index >= warmup:
            run.job_ids.append(job_id)
            run.timings.append(job_timing(bench.app.store, bench.timeline, job_id, put_at))
    return run


@dataclass(frozen=True)
class DuplicateRun:
    deliveries_s: list[float]
    by_kind: dict[str, list[float]]
    events: int
    phase_runs_before: dict[str, int]
    phase_runs_after: dict[str, int]
    tasks_started: int


def duplicates(bench: Bench, job_ids: list[str], repeats: int) -> DuplicateRun:
    """Re-deliver every event of each finished job `repeats` times, one at a time, timing each delivery
    from `submit_event` until the runtime is idle again."""
    store, timeline, runtime = bench.app.store, bench.timeline, bench.app.runtime
    before, started = bench.phase_runs(), timeline.start_count
    deliveries: list[float] = []
    by_kind: dict[str, list[float]] = {}
    events = 0
    for job_id in job_ids:
        prefixes = job_keys(store, job_id)
        for event in [e for e in timeline.events if e.key.startswith(prefixes)]:
            events += 1
            for _ in range(repeats):
                t0 = time.perf_counter()
                runtime.submit_event(event)
                bench.wait_idle()
                elapsed = time.perf_counter() - t0
                deliveries.append(elapsed)
                by_kind.setdefault(key_kind(event.key), []).append(elapsed)
    after = bench.phase_runs()
    return DuplicateRun(deliveries, by_kind, events, before, after, timeline.start_count - started)


@dataclass(frozen=True)
class ThroughputRun:
    jobs: int
    elapsed_s: float
    submit_s: float
    timings: list[JobTiming]


def throughput(bench: Bench, jobs: int, first_index: int) -> ThroughputRun:
    """Put every job's inputs back to back, then wait for all of them: jobs / (first put -> last result)."""
    job_ids = [f"tp-{i:04d}" for i in range(jobs)]
    put_at = {job_id: put_job(bench, job_id, first_index + i) for i, job_id in enumerate(job_ids)}
    submitted = time.time()
    bench.wait_idle()
    first = min(put_at.values())
    timings = [job_timing(bench.app.store, bench.timeline, job_id, put_at[job_id]) for job_id in job_ids]
    last = max(bench.timeline.visible[layout.result_manifest_key(job_id)] for job_id in job_ids)
    return ThroughputRun(jobs, last - first, submitted - first, timings)


def put_cost(folder: Path, puts: int = 200) -> list[float]:
    """Seconds per 1 KiB put to a new key (20 folders, like a job's runs) on a scratch folder store, with
    no subscriber: the store's own cost (temp file, fsync, rename, directory fsync, lock file)."""
    store = FolderStore(folder)
    data = os.urandom(1024)
    costs = []
    for i in range(puts):
        t0 = time.perf_counter()
        store.put(f"work/scratch/{i % 20:02d}/{i:04d}.json", data)
        costs.append(time.perf_counter() - t0)
    return costs
