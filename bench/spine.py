"""Benchmark of the orchestration spine: what the runtime, router, claims and the folder bucket add
around the phases' own work.

    .venv/bin/python -m bench.spine [--jobs 20] [--phase-ms 200] [--out bench/out/spine.json]
                                    [--dup-jobs 3] [--repeats 20] [--tmp DIR]

Run it from the repository root (it imports the fake phases from tests/fakes.py); about 30 s with the
defaults. It prints two tables and writes a JSON report (machine, parameters, method, results, targets with
met/missed). The exit code is 0 even when a target is MISSED: this is a benchmark, not a test. The fake
phases read and write the bucket like real ones and sleep `--phase-ms` each, so what is measured beyond
that is orchestration. The buckets live in a temporary folder under `--tmp` (default: the system temp
dir), removed afterwards. Most of the overhead is puts (two fsyncs each), so the disk matters: the report
names the file system and what one small put costs on it; `--tmp /dev/shm` shows the spine without disk.

What it measures, on a local folder bucket wired by `functions.app.build_local` with 2 workers:

1. Event -> phase start latency, p50/p99 over every phase task of `--jobs` jobs run one at a time with
   distinct inputs (no run is shared; the report checks it). A phase's trigger is the write that made it
   ready: the job's plan.json for avatar and wardrobe, the later upstream `_manifest.json` for fitting and
   viewer3d. Its time is the `event_time` of the folder store's event for that key, taken by a store
   subscriber (the store stamps it as the object becomes visible). The start is the runtime's `on_start`
   hook for the task's first attempt. "compute start" goes on to the phase function's entry (past the
   skip check, the claim and the task read), timed by a wrapper around the fake phases.
2. Orchestration overhead, median over the same jobs: wall time (just before the first input put ->
   `results/{job}/manifest.json` visible) divided by the sum of the four runs' `duration_s` (from their
   `_manifest.json`), and by the critical path max(avatar, wardrobe) + fitting + viewer3d (avatar and
   wardrobe run side by side). Target: critical-path ratio < 1.05. A second table splits the wall time
   along the critical path (upload, intake, per phase dispatch/claim/compute/commit, publish) with the
   puts made in each stage; the parts add up to the wall time exactly.
3. Cost of a duplicate event: every event of `--dup-jobs` finished jobs is re-delivered `--repeats`
   times with `runtime.submit_event`, one at a time, each timed until the runtime is idle again. Target:
   no phase runs again (the fake phases' run log is compared before and after).
4. Throughput: `--jobs` jobs put at once on a fresh bucket; jobs/s from the first put to the last
   results manifest, against the ideal (workers / summed phase seconds of one job), and how long each
   job took under that load (first, median and last result).

One warm-up job (imports, first image decode) runs first and is not counted. Percentiles interpolate
between closest ranks; with 80 samples p99 is close to the max, shown beside it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bench.results import Params, report
from functions.logs import configure

console = Console(width=None if sys.stdout.isatty() else 120)
STAGE_NOTES = {
    "upload": "the two input puts",
    "intake": "last input visible -> plan.json visible: route, claim, check photos, register runs",
    "dispatch": "trigger visible -> on_start: end of the put, route, hand to a worker (x3 phases)",
    "claim": "on_start -> phase entered: skip check, claim put, lease thread, task read (x3)",
    "compute": "inside the phase functions: the sleep plus their own reads and writes (x3)",
    "commit": "phase returned -> _manifest.json visible (x3)",
    "publish": "viewer3d manifest -> results manifest visible: route, claim, copy files, manifest",
}


def _ms(summary: dict[str, float]) -> str:
    return f"{summary['p50']:.2f} / {summary['p99']:.2f} / {summary['max']:.2f}"


def _status(target: dict[str, Any]) -> str:
    return "[green]met[/]" if target["met"] else "[bold red]MISSED[/]"


def results_table(doc: dict[str, Any]) -> Table:
    r, params, host = doc["results"], doc["parameters"], doc["machine"]
    ratio, rerun = doc["targets"]
    over, dup, tp = r["overhead"], r["duplicates"], r["throughput"]
    table = Table(title=f"dropfit spine: {params['jobs']} jobs, {params['phase_ms']:.0f} ms per phase, "
                        f"{params['workers']} workers, folder bucket on {host['bucket_filesystem']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("status")
    latency = r["latency"]
    table.add_row("event -> phase task start, ms (p50 / p99 / max)", _ms(latency["event_to_phase_start_ms"]))
    table.add_row("event -> phase compute start, ms", _ms(latency["event_to_phase_compute_ms"]))
    table.add_row("job wall / sum of phase durations (median)", f"{over['ratio_phase_sum']['median']:.3f}")
    cp = over["ratio_critical_path"]
    spread = f"{cp['median']:.3f} (min {cp['min']:.3f}, max {cp['max']:.3f})"
    table.add_row("job wall / critical path (median)", spread, ratio["target"], _status(ratio))
    median = over["median_ms"]
    table.add_row("  wall vs critical path, ms (median)",
                  f"{median['wall']:.1f} vs {median['critical_path']:.1f}")
    table.add_row(f"duplicate event -> idle, ms ({dup['events']} events x {dup['repeats']})",
                  _ms(dup["per_duplicate_ms"]))
    table.add_row("  phase re-runs / tasks started by duplicates",
                  f"{rerun['value']} / {dup['tasks_started']}", rerun["target"], _status(rerun))
    table.add_row(f"throughput, {tp['jobs']} jobs at once, jobs/s",
                  f"{tp['jobs_per_s']:.2f} (ideal {tp['ideal_jobs_per_s']:.2f}: {tp['efficiency']:.0%})")
    table.add_row("  event -> phase task start under load, ms", _ms(tp["event_to_phase_start_under_load_ms"]))
    wall = tp["job_wall_s"]
    table.add_row("  job wall under load, s (first / median / last)",
                  f"{wall['first']:.2f} / {wall['median']:.2f} / {wall['last']:.2f}")
    table.add_row("one 1 KiB put on this disk, ms (p50 / p99 / max)", _ms(host["put_1kib_ms"]))
    return table


def stages_table(doc: dict[str, Any]) -> Table:
    over = doc["results"]["overhead"]
    stages, puts = over["critical_path_stages_median_ms"], over["critical_path_stage_puts_median"]
    table = Table(title="where a job's wall time goes (sequential jobs, critical path, median per job)")
    table.add_column("stage")
    table.add_column("ms", justify="right")
    table.add_column("puts", justify="right")
    table.add_column("what it covers")
    for name, value in stages.items():
        table.add_row(name, f"{value:.1f}", f"{puts[name]:g}", STAGE_NOTES.get(name, ""))
    total_ms, total_puts = sum(stages.values()), sum(puts.values())
    table.add_row("[dim]sum of medians[/]", f"[dim]{total_ms:.1f}[/]", f"[dim]{total_puts:g}[/]")
    return table


def main(
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="jobs per run, each with distinct inputs")] = 20,
    phase_ms: Annotated[float, typer.Option("--phase-ms", min=0, help="work per fake phase, ms")] = 200.0,
    out: Annotated[Path, typer.Option("--out", help="the JSON report")] = Path("bench/out/spine.json"),
    dup_jobs: Annotated[int, typer.Option("--dup-jobs", min=1, help="jobs re-sent")] = 3,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="deliveries of each duplicate event")] = 20,
    tmp: Annotated[Path | None, typer.Option("--tmp", help="folder for the buckets (default: temp)")] = None,
) -> None:
    """Measure the orchestration spine on a folder bucket with the fake phases (see the module docstring)."""
    configure("console", "warning")
    params = Params(jobs=jobs, phase_ms=phase_ms, dup_jobs=min(dup_jobs, jobs), repeats=repeats,
                    tmp=str(tmp) if tmp else None)
    console.print(f"dropfit spine: {jobs} jobs one at a time, their duplicates, then {jobs} jobs at once ...")
    doc = report(params)
    console.print(results_table(doc))
    console.print(stages_table(doc))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    missed = [t["name"] for t in doc["targets"] if not t["met"]]
    if missed:
        names = "; ".join(missed)
        console.print(f"[bold red]MISSED[/] {len(missed)} of {len(doc['targets'])} targets: {names}")
    else:
        console.print(f"[green]all {len(doc['targets'])} targets met[/]")
    console.print(f"report: {out}")


if __name__ == "__main__":
    typer.run(main)
