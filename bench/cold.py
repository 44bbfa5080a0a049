"""Benchmark of a cold `dropfit run`: a fresh process per job, from the command to its exit.

    .venv/bin/python -m bench.cold [--runs 5] [--out bench/out/cold.json]

Runs `dropfit run PERSON GARMENT --bucket TMP` on dev pair 0 (../shared/data/tryon or DROPFIT_DEV_DATA) in
`--runs` fresh processes, each on a new bucket (so nothing is reused from storage; the model cache under .cache/
is kept, as on any machine after `make setup`). Reports the median and spread of the wall time, and splits the
first job's time: importing the CLI (a separate fresh `python -c "import functions.cli"`), each phase's
duration from the job's manifest (the first call of each model is inside its phase), and the rest (start-up,
intake, publish, waiting between steps, exit). Target: at most 5 s median (issue 16). Exit code 0 even when
missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.job import pairs

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 5.0


def one_run(person: Path, garment: Path, bucket: Path) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "functions.cli", "run", str(person), str(garment), "--bucket",
                           str(bucket), "--job-id", "cold"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    manifest_path = bucket / "results/cold/manifest.json"
    if done.returncode != 0 or not manifest_path.is_file():
        return {"ok": False, "wall_s": round(wall, 3), "exit": done.returncode, "tail": done.stdout[-500:]}
    manifest = json.loads(manifest_path.read_text())
    phases = {name: summary["duration_s"] for name, summary in manifest["phases"].items()}
    return {"ok": True, "wall_s": round(wall, 3), "phases_s": phases,
            "rest_s": round(wall - sum(phases.values()), 3)}


def import_seconds() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import functions.cli"], cwd=ROOT, check=True, timeout=300)
    return round(time.perf_counter() - started, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/cold.json")
    args = parser.parse_args()
    person, garment = pairs(1)[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.runs):
            rows.append(one_run(person, garment, Path(tmp) / f"bucket{n}"))
            print(json.dumps(rows[-1]))
    imports = [import_seconds() for _ in range(3)]
    walls = [r["wall_s"] for r in rows if r["ok"]]
    summary: dict[str, Any] = {
        "runs": len(rows), "succeeded": len(walls), "pair": [person.name, garment.name],
        "median_wall_s": round(statistics.median(walls), 3) if walls else None,
        "min_wall_s": min(walls, default=None), "max_wall_s": max(walls, default=None),
        "import_cli_s": round(statistics.median(imports), 3), "first_job": rows[0], "target_s": TARGET_S,
    }
    print(f"\ncold `dropfit run`: median {summary['median_wall_s']} s over {len(walls)} runs "
          f"(min {summary['min_wall_s']}, max {summary['max_wall_s']}; target <= {TARGET_S}); "
          f"importing the CLI {summary['import_cli_s']} s; first job's phases {rows[0].get('phases_s')}, "
          f"the rest {rows[0].get('rest_s')} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
