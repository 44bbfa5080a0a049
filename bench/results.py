"""The spine benchmark's numbers: run the scenarios, reduce them to summaries, judge the targets.

Percentiles interpolate linearly between closest ranks (numpy's default); with 80 samples p99 is close
to the maximum, which is reported alongside.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.scenarios import DuplicateRun, ThroughputRun
from bench.timeline import JobTiming, Timeline
from pipeline.phases import PHASES

CRITICAL_PATH_TARGET = 1.05


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {"n": len(ms), "p50": round(percentile(ms, 0.5), 3), "p99": round(percentile(ms, 0.99), 3),
            "mean": round(statistics.fmean(ms), 3), "max": round(max(ms), 3)}


def latency_results(timings: list[JobTiming]) -> dict[str, Any]:
    phases = [p.name for p in PHASES]
    return {
        "event_to_phase_start_ms": summary_ms([t.latency[p] for t in timings for p in phases]),
        "event_to_phase_compute_ms": summary_ms([t.to_compute[p] for t in timings for p in phases]),
        "by_step_event_to_start_ms": {s: summary_ms([t.latency[s] for t in timings])
                                      for s in ("intake", *phases, "publish")},
    }


def overhead_results(timings: list[JobTiming]) -> dict[str, Any]:
    def ratios(attr: str) -> dict[str, float]:
        values = [t.wall_s / getattr(t, attr) for t in timings]
        return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
                "max": round(max(values), 4)}

    return {
        "ratio_phase_sum": ratios("phase_sum_s"),
        "ratio_critical_path": ratios("critical_path_s"),
        "median_ms": {"wall": _median_ms([t.wall_s for t in timings]),
                      "phase_sum": _median_ms([t.phase_sum_s for t in timings]),
                      "critical_path": _median_ms([t.critical_path_s for t in timings])},
        "critical_path_stages_median_ms": {k: _median_ms([t.stages[k] for t in timings])
                                           for k in timings[0].stages},
        "critical_path_stage_puts_median": {k: statistics.median(t.stage_puts[k] for t in timings)
                                            for k in timings[0].stage_puts},
        "per_job": [{"job": t.job_id, "wall_ms": round(t.wall_s * 1000, 2),
                     "duration_ms": {p: round(s * 1000, 2) for p, s in t.durations.items()},
                     "stages_ms": {k: round(v * 1000, 2) for k, v in t.stages.items()}} for t in timings],
    }


def _median_ms(values_s: list[float]) -> float:
    return round(statistics.median(values_s) * 1000, 3)


def duplicate_results(run: DuplicateRun, repeats: int) -> dict[str, Any]:
    reruns = sum(run.phase_runs_after.values()) - sum(run.phase_runs_before.values())
    return {
        "events": run.events, "repeats": repeats, "per_duplicate_ms": summary_ms(run.deliveries_s),
        "by_key_kind_ms": {k: summary_ms(v) for k, v in sorted(run.by_kind.items())},
        "phase_runs_before": run.phase_runs_before, "phase_runs_after": run.phase_runs_after,
        "phase_reruns": reruns, "tasks_started": run.tasks_started,
    }


def throughput_results(run: ThroughputRun, workers: int) -> dict[str, Any]:
    per_job_compute = statistics.median(t.phase_sum_s for t in run.timings)
    rate = run.jobs / run.elapsed_s
    ideal = workers / per_job_compute
    under_load = summary_ms([t.latency[p.name] for t in run.timings for p in PHASES])
    walls = [t.wall_s for t in run.timings]
    job_wall = {"first": round(min(walls), 3), "median": round(statistics.median(walls), 3),
                "last": round(max(walls), 3)}
    return {"jobs": run.jobs, "workers": workers, "elapsed_s": round(run.elapsed_s, 3),
            "submit_s": round(run.submit_s, 3), "jobs_per_s": round(rate, 3),
            "ideal_jobs_per_s": round(ideal, 3), "efficiency": round(rate / ideal, 4),
            "event_to_phase_start_under_load_ms": under_load, "job_wall_s": job_wall}


@dataclass(frozen=True)
class Params:
    jobs: int = 20
    phase_ms: float = 200.0
    dup_jobs: int = 3
    repeats: int = 20
    workers: int = 2
    warmup_jobs: int = 1
    tmp: str | None = None  # where the buckets go; None: the system temp dir


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    ratio = results["overhead"]["ratio_critical_path"]["median"]
    reruns = results["duplicates"]["phase_reruns"]
    return [
        {"name": "critical-path overhead ratio (median)", "target": f"< {CRITICAL_PATH_TARGET}",
         "value": ratio, "met": ratio < CRITICAL_PATH_TARGET},
        {"name": "phase re-runs caused by duplicate events", "target": "== 0", "value": reruns,
         "met": reruns == 0},
    ]


def filesystem(path: Path) -> str:
    """The file system type holding `path` (Linux, from /proc/mounts); 'unknown' elsewhere."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "unknown"
    path = path.resolve()
    best = max((m for m in mounts if path.is_relative_to(m[0])), key=lambda m: len(m[0]), default=None)
    return f"{best[1]} at {best[0]}" if best else "unknown"


def machine(tmp: Path, put_costs_s: list[float]) -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "bucket_dir": str(tmp), "bucket_filesystem": filesystem(tmp),
            "put_1kib_ms": summary_ms(put_costs_s)}


def run_all(params: Params, tmp: Path) -> dict[str, Any]:
    timeout = 60 + params.jobs * 8 * params.phase_ms / 1000
    open_bench = partial(scenarios.open_bench, phase_s=params.phase_ms / 1000, workers=params.workers,
                         idle_timeout_s=timeout)
    seq_bench = open_bench(tmp / "sequential")
    with seq_bench.app.runtime:
        seq = scenarios.sequential(seq_bench, params.jobs, params.warmup_jobs)
        shared = _shared_runs(seq_bench.phase_runs(), params.jobs + params.warmup_jobs)
        dup = scenarios.duplicates(seq_bench, seq.job_ids[: params.dup_jobs], params.repeats)
    tp_bench = open_bench(tmp / "throughput")
    with tp_bench.app.runtime:
        tp = scenarios.throughput(tp_bench, params.jobs, first_index=params.jobs + params.warmup_jobs)
    extra = _extra_runs(seq_bench.timeline)
    return {
        "latency": latency_results(seq.timings),
        "overhead": overhead_results(seq.timings),
        "duplicates": duplicate_results(dup, params.repeats),
        "throughput": throughput_results(tp, params.workers),
        "checks": {"shared_runs": shared, "extra_task_runs": extra, "bucket_files": seq_bench.files()},
    }


def _extra_runs(timeline: Timeline) -> dict[str, dict[str, float]]:
    """Task runs that did no work (skipped, busy, ...): how many, and the handler time they took."""
    spent = timeline.outcome_s
    return {f"{step}:{outcome}": {"count": n, "handler_ms": round(spent[(step, outcome)] * 1000, 2)}
            for (step, outcome), n in sorted(timeline.outcomes.items()) if outcome != "done"}


def _shared_runs(runs: dict[str, int], expected: int) -> dict[str, int]:
    """Phases that ran fewer times than there were jobs (inputs that were not distinct after all)."""
    return {phase: expected - n for phase, n in runs.items() if n != expected}


METHOD = {
    "latency": "trigger = event_time (folder store, stamped as the object becomes visible) of the job's "
               "plan.json (avatar, wardrobe) or of the latest upstream _manifest.json (fitting, viewer3d); "
               "start = on_start hook, first attempt; compute = phase function entered; sequential jobs",
    "overhead": "wall = time.time() before the first input put -> event_time of results/{job}/manifest.json; "
                "phase durations = duration_s of work/{phase}/{run_key}/_manifest.json; critical path = "
                "max(avatar, wardrobe) + fitting + viewer3d; median over sequential jobs. Stages split the "
                "wall time along the critical path; 'puts' counts objects made visible during each stage",
    "duplicates": "every stored event of a finished job, submit_event'ed `repeats` times one at a time; "
                  "time from submit to runtime idle; phase re-runs from the fake phases' run log",
    "throughput": "all jobs' inputs put back to back on a fresh bucket; jobs / (first put -> last results "
                  "manifest event_time); ideal = workers / median per-job sum of phase durations",
    "put_1kib_ms": "200 puts of 1 KiB to new keys on a scratch folder store beside the buckets, "
                   "no subscriber",
}


def report(params: Params) -> dict[str, Any]:
    """The whole JSON document: machine, parameters, method, results and targets."""
    with tempfile.TemporaryDirectory(prefix="dropfit-bench-", dir=params.tmp) as tmp:
        root = Path(tmp)
        put_costs = scenarios.put_cost(root / "scratch")
        results = run_all(params, root)
    return {
        "benchmark": "dropfit spine",
        "machine": machine(root.parent, put_costs),
        "parameters": {**asdict(params), "bucket": "FolderStore"},
        "method": METHOD,
        "results": results,
        "targets": targets(results),
        "argv": sys.argv[1:],
    }
