"""Benchmark of whole jobs on the real CPU models: per-phase seconds, job wall time and peak memory.

    .venv/bin/python -m bench.job [--pairs 10] [--out bench/out/job.json] [--sheets DIR]

Runs `--pairs` dev pairs (person i with garment i, from ../shared/data/tryon or DROPFIT_DEV_DATA) one job
at a time through the local runtime on a folder bucket in a temporary folder, after one warm-up job on the
built-in sample (model loads, not counted). Reports, per job, each phase's `duration_s` from its manifest
and the wall time from the first upload to results/{job}/manifest.json; medians; the identity distance at
000/045/315; and the process's peak RSS. `--sheets DIR` keeps each job's contact sheet there, to look at.
Targets: a whole job under 10 s, peak memory under 2.5 GB. Exit code 0 even when missed.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.devdata import DEV_DATA, dev_photos
from functions.app import LocalApp, build_local
from infra.settings import Settings
from pipeline import layout
from pipeline.manifests import ResultManifest
from pipeline.sample import sample_garment, sample_person
from pipeline.state import job_error, job_status, load_plan, read_model

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("avatar", "wardrobe", "fitting", "viewer3d")


def run_job(app: LocalApp, job: str, person: tuple[bytes, str], garment: tuple[bytes, str]) -> dict[str, Any]:
    started = time.perf_counter()
    app.store.put(layout.incoming_image_key(job, "person", person[1]), person[0])
    app.store.put(layout.incoming_image_key(job, "garment", garment[1]), garment[0])

    def done() -> bool:
        plan = load_plan(app.store, job)
        return plan is not None and job_status(app.store, plan) != "running"

    app.runtime.run_until(done, timeout=300)
    wall = time.perf_counter() - started
    manifest = read_model(app.store, layout.result_manifest_key(job), ResultManifest)
    if manifest is None:
        error = job_error(app.store, job)
        return {"job": job, "ok": False, "wall_s": round(wall, 3), "error": error.reason if error else "timeout"}
    phases = {p: manifest.phases[p].duration_s for p in PHASES}
    identity = manifest.phases["fitting"].data.get("identity_distance", {})
    return {"job": job, "ok": True, "wall_s": round(wall, 3), "phases_s": phases,
            "identity": {a: identity.get(a) for a in ("000", "045", "315")},
            "flags": manifest.phases["fitting"].data.get("quality_flags", [])}


def pairs(count: int) -> list[tuple[Path, Path]]:
    people, garments = dev_photos("people"), dev_photos("garments")
    if not people or not garments:
        raise SystemExit(f"no development photos under {DEV_DATA}; set DROPFIT_DEV_DATA")
    step = max(1, len(garments) // count)
    return [(people[i % len(people)], garments[(i * step) % len(garments)]) for i in range(count)]


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if r["ok"]]
    med = {p: round(statistics.median(r["phases_s"][p] for r in ok), 3) for p in PHASES} if ok else {}
    dist = {a: [r["identity"][a] for r in ok if r["identity"][a] is not None] for a in ("000", "045", "315")}
    return {
        "jobs": len(rows), "succeeded": len(ok),
        "median_wall_s": round(statistics.median(r["wall_s"] for r in ok), 3) if ok else None,
        "median_phase_s": med,
        "identity_median": {a: round(statistics.median(v), 3) if v else None for a, v in dist.items()},
        "identity_checked": {a: len(v) for a, v in dist.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/job.json")
    parser.add_argument("--sheets", type=Path, default=None, help="copy each job's contact sheet here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        app = build_local(Path(tmp) / "bucket", Settings(workers=2))
        with app.runtime:
            warm = run_job(app, "warmup", (sample_person(), "png"), (sample_garment(), "png"))
            for n, (person, garment) in enumerate(pairs(args.pairs)):
                job = f"pair{n:02d}"
                ext = (person.suffix.lstrip(".").lower(), garment.suffix.lstrip(".").lower())
                row = run_job(app, job, (person.read_bytes(), ext[0]), (garment.read_bytes(), ext[1]))
                rows.append({**row, "person": person.name, "garment": garment.name})
                print(json.dumps(rows[-1]))
                if args.sheets and row["ok"]:
                    args.sheets.mkdir(parents=True, exist_ok=True)
                    shutil.copy(Path(tmp) / f"bucket/results/{job}/contact_sheet.jpg",
                                args.sheets / f"{job}-{person.stem}-{garment.stem}.jpg")
    report: dict[str, Any] = {"warmup": warm, "summary": summarise(rows), "rows": rows,
                              "targets": {"job_s": 10.0, "peak_rss_mb": 2560}}
    s = report["summary"]
    print(f"\n{s['succeeded']}/{s['jobs']} jobs; median wall {s['median_wall_s']} s (target < 10); "
          f"median phase s {s['median_phase_s']}; identity median {s['identity_median']} "
          f"(checked {s['identity_checked']}); peak RSS {s['peak_rss_mb']} MB (target < 2560)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
