"""Benchmark of catalog batches: P model photos x G garments, from the commit marker to the batch report.

    .venv/bin/python -m bench.catalog [--sizes 1x1,2x9,4x12] [--workers 2] [--out bench/out/catalog.json]

Each size runs in a fresh process (so its peak RSS is its own) on a folder bucket in a temporary folder: the dev
photos (../shared/data/tryon or DROPFIT_DEV_DATA; people and garments reused in turn when a size asks for more
than there are) go under catalog/{batch}/, then batch.json, and the local runtime with `--workers` runs it to
results/batches/{batch}/report.json. One warm-up job on the built-in sample first (model loads, not counted:
`bench.cold` measures those). Reports the wall time, the ideal (the summed wall time of every phase run of the
batch, each run once, divided by the workers), their ratio, the phases' share of the compute, the batch's cost
from its report, the process's CPU seconds over the batch (and the cores it kept busy: CPU / wall, at most the
core count; well under it, the workers wait on something other than the CPU), and the peak RSS. Targets for 2x9
on 2 cores (issue 16): at most 35 s, ratio at most 1.1, peak RSS at most 1.5 GB. Exit code 0 even when missed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.devdata import DEV_DATA, dev_photos
from bench.job import run_job
from functions.app import build_local
from infra.settings import Settings
from pipeline import layout
from pipeline.manifests import BatchReport, ResultManifest
from pipeline.sample import sample_garment, sample_person
from pipeline.state import read_model

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"2x9": {"wall_s": 35.0, "ratio": 1.1, "peak_rss_mb": 1536}}


def run_size(people: int, garments: int, workers: int) -> dict[str, Any]:
    """One batch in this process."""
    found = dev_photos("people"), dev_photos("garments")
    if not found[0] or not found[1]:
        raise SystemExit(f"no development photos under {DEV_DATA}; set DROPFIT_DEV_DATA")
    with tempfile.TemporaryDirectory() as tmp:
        app = build_local(Path(tmp) / "bucket", Settings(workers=workers))
        store = app.store
        with app.runtime:
            run_job(app, "warmup", (sample_person(), "png"), (sample_garment(), "png"))
            batch = f"b{people}x{garments}"
            for kind, count, prefix in (("people", people, layout.catalog_people_prefix(batch)),
                                        ("garments", garments, layout.catalog_garments_prefix(batch))):
                photos = found[0] if kind == "people" else found[1]
                for n in range(count):
                    source = photos[n % len(photos)]
                    store.put(f"{prefix}{n:02d}-{source.name}", source.read_bytes())
            started, cpu_started = time.perf_counter(), time.process_time()
            store.put(layout.batch_marker_key(batch), b"{}")
            app.runtime.run_until(lambda: store.head(layout.batch_report_key(batch)) is not None, timeout=3600)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        report = read_model(store, layout.batch_report_key(batch), BatchReport)
        if report is None:
            return {"size": f"{people}x{garments}", "ok": False, "wall_s": round(wall, 2)}
        runs: dict[tuple[str, str], float] = {}
        for entry in report.jobs:
            manifest = read_model(store, layout.result_manifest_key(entry.job_id), ResultManifest)
            for name, summary in (manifest.phases.items() if manifest else ()):
                runs[(name, summary.run_key)] = summary.duration_s
    compute = sum(runs.values())
    by_phase = {name: round(sum(s for (n, _), s in runs.items() if n == name), 2)
                for name in sorted({n for n, _ in runs})}
    ideal = compute / workers
    return {"size": f"{people}x{garments}", "ok": True, "jobs": report.total, "succeeded": report.succeeded,
            "workers": workers, "wall_s": round(wall, 2), "ideal_s": round(ideal, 2),
            "cpu_s": round(cpu, 2), "cores_busy": round(cpu / wall, 2) if wall else None,
            "ratio": round(wall / ideal, 3) if ideal else None, "compute_s_by_phase": by_phase,
            "phase_runs": len(runs), "cost": report.cost.model_dump() if report.cost else None,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1x1,2x9,4x12", help="people x garments, comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/catalog.json")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child process: run one size, print it
    args = parser.parse_args()
    if args.one:
        people, garments = (int(x) for x in args.one.split("x"))
        print(json.dumps(run_size(people, garments, args.workers)))
        return
    rows = []
    for size in args.sizes.split(","):
        done = subprocess.run([sys.executable, "-m", "bench.catalog", "--one", size, "--workers", str(args.workers)],
                              cwd=ROOT, capture_output=True, text=True, timeout=7200)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        rows.append(json.loads(lines[-1]) if lines else {"size": size, "ok": False, "tail": done.stderr[-800:]})
        row = rows[-1]
        print(f"{size}: {row.get('succeeded')}/{row.get('jobs')} jobs, wall {row.get('wall_s')} s, ideal "
              f"{row.get('ideal_s')} s, ratio {row.get('ratio')}, CPU {row.get('cpu_s')} s "
              f"({row.get('cores_busy')} cores busy), peak RSS {row.get('peak_rss_mb')} MB, "
              f"compute by phase {row.get('compute_s_by_phase')}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "targets": TARGETS}, indent=2))


if __name__ == "__main__":
    main()
