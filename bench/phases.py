"""Benchmark of the model phases on the development photos: time per image and peak memory, on CPU.

    .venv/bin/python -m bench.phases [--people N] [--garments N] [--out bench/out/phases.json]

Each phase function of the product registry (the same code `dropfit run` runs) is called on every dev
photo through a real folder bucket in a temporary folder: decode, models, outputs written. One call per
phase warms the models up first and is not counted (model build and first-call costs are reported apart).
Reports the median, p90 and max seconds per image, the fit quality the phases recorded (avatar: people
found, reprojection error, mask IoU; wardrobe: category, coverage) and the process's peak RSS.
Targets: avatar < 1.5 s, wardrobe < 0.5 s per image after warm-up. The photos are read from
../shared/data/tryon (or DROPFIT_DEV_DATA); the exit code is 0 even when a target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.devdata import DEV_DATA, dev_photos
from infra.folder_store import FolderStore
from pipeline.errors import InvalidInput
from pipeline.phase_api import PhaseIO, PhaseRegistry, PhaseTask
from pipeline.plan import InputRef
from pipeline.registry import product_registry
from pipeline.spec import JobSpec

ROOT = Path(__file__).resolve().parents[1]
TARGETS_S = {"avatar": 1.5, "wardrobe": 0.5}
INPUT_OF = {"avatar": "person", "wardrobe": "garment"}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_one(store: FolderStore, registry: PhaseRegistry, phase: str, photo: Path, n: int) -> dict[str, Any]:
    data = photo.read_bytes()
    key = f"incoming/bench-{n}/{INPUT_OF[phase]}{photo.suffix.lower()}"
    store.put(key, data)
    digest = hashlib.sha256(data).hexdigest()
    ref = InputRef(key=key, etag=hashlib.md5(data).hexdigest(), size=len(data), sha256=digest)
    task = PhaseTask(phase=phase, run_key=f"bench{n:03d}{digest[:8]}", inputs={INPUT_OF[phase]: ref}, upstream={},
                     spec=JobSpec())
    started = time.perf_counter()
    try:
        result = registry.get(phase)(task, PhaseIO(store, task))
        outcome: dict[str, Any] = {"ok": True, "data": result.data}
    except InvalidInput as exc:
        outcome = {"ok": False, "reason": exc.reason}
    return {"photo": photo.name, "seconds": round(time.perf_counter() - started, 4), **outcome}


def bench_phase(store: FolderStore, registry: PhaseRegistry, phase: str, photos: list[Path]) -> dict[str, Any]:
    started = time.perf_counter()
    first = run_one(store, registry, phase, photos[0], 999)
    warm_s = time.perf_counter() - started
    rows = [run_one(store, registry, phase, p, i) for i, p in enumerate(photos)]
    times = sorted(r["seconds"] for r in rows)
    return {
        "images": len(rows),
        "first_call_s": round(warm_s, 3),
        "first_call_ok": first["ok"],
        "median_s": round(statistics.median(times), 4),
        "p90_s": round(times[int(0.9 * (len(times) - 1))], 4),
        "max_s": round(times[-1], 4),
        "target_s": TARGETS_S[phase],
        "met": statistics.median(times) < TARGETS_S[phase],
        "ok": sum(r["ok"] for r in rows),
        "rows": rows,
    }


def quality(phase: str, rows: list[dict[str, Any]]) -> str:
    done = [r["data"] for r in rows if r["ok"]]
    if phase == "avatar" and done:
        err = statistics.median(d["reprojection_error_px"] for d in done)
        iou = statistics.median(d["mask_iou"] for d in done)
        return f"median reprojection {err:.1f} px, median mask IoU {iou:.3f}"
    if phase == "wardrobe" and done:
        cats: dict[str, int] = {}
        for d in done:
            cats[str(d.get("category"))] = cats.get(str(d.get("category")), 0) + 1
        return "categories " + ", ".join(f"{k} {v}" for k, v in sorted(cats.items()))
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=0, help="use the first N people (0 = all)")
    parser.add_argument("--garments", type=int, default=0, help="use the first N garments (0 = all)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/phases.json")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 2)
    photos = {kind: dev_photos(kind) for kind in ("people", "garments")}
    if not photos["people"] or not photos["garments"]:
        raise SystemExit(f"no development photos under {DEV_DATA}; set DROPFIT_DEV_DATA")
    photos["people"] = photos["people"][: args.people or None]
    photos["garments"] = photos["garments"][: args.garments or None]
    registry = product_registry()
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}}
    with tempfile.TemporaryDirectory() as tmp:
        store = FolderStore(Path(tmp) / "bucket")
        for phase, kind in (("avatar", "people"), ("wardrobe", "garments")):
            if not registry.available(phase):
                print(f"{phase}: not in this build, skipped")
                continue
            report[phase] = bench_phase(store, registry, phase, photos[kind])
            report[phase]["quality"] = quality(phase, report[phase]["rows"])
            report[phase]["peak_rss_mb_after"] = round(peak_rss_mb(), 1)
    print(f"{'phase':10} {'images':>6} {'ok':>4} {'first s':>8} {'median s':>9} {'p90 s':>7} {'max s':>7} "
          f"{'target':>7} {'peak MB':>8}  quality")
    for phase in (p for p in ("avatar", "wardrobe") if p in report):
        r = report[phase]
        print(f"{phase:10} {r['images']:>6} {r['ok']:>4} {r['first_call_s']:>8} {r['median_s']:>9} {r['p90_s']:>7} "
              f"{r['max_s']:>7} {('met' if r['met'] else 'MISSED'):>7} {r['peak_rss_mb_after']:>8}  {r['quality']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"report: {args.out}")


if __name__ == "__main__":
    main()
