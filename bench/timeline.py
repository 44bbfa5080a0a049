"""What happened to each job, and when: the probes the benchmark hangs on the runtime, and their analysis.

Every time here is wall-clock seconds since the epoch, so that times taken in different threads compare:

- `visible[key]`: the `event_time` of the latest put of `key`, from a store subscriber. The folder store
  derives it from the file itself (set just before the rename that makes it visible), so it is the moment
  the object appeared in the bucket, not the moment our subscriber ran;
- `starts[ident]`: the runtime's `on_start` hook for a task's first attempt (later calls for the same task,
  a retry or a re-check, are counted but not timed);
- `calls[(phase, run_key)]`: entry and exit of the phase function itself, from a thin wrapper around the
  fake phases (so the claim and skip checks between `on_start` and the phase's work show separately).

A job's wall time then splits exactly along its critical path (see `JobTiming.stages`).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from events.contracts import ObjectEvent
from events.tasks import Task
from functions.handlers import StepOutcome
from pipeline import layout
from pipeline.phase_api import PhaseFn, PhaseIO, PhaseRegistry, PhaseResult, PhaseTask
from pipeline.phases import PHASES
from pipeline.plan import JobPlan
from pipeline.state import load_plan, run_manifest
from pipeline.storage import ObjectStore

FIRST_STAGE = tuple(p.name for p in PHASES if not p.phase_needs)  # avatar, wardrobe: run side by side


class Timeline:
    """The probes: pass `on_event` to `store.subscribe`, `on_start`/`on_outcome` to `build_local`, and
    the registry through `wrap`."""

    def __init__(self) -> None:
        self.events: list[ObjectEvent] = []
        self.visible: dict[str, float] = {}
        self.starts: dict[str, float] = {}
        self.calls: dict[tuple[str, str], tuple[float, float]] = {}
        self.start_count = 0
        self.outcomes: Counter[tuple[str, str]] = Counter()
        # handler seconds spent per (step, outcome)
        self.outcome_s: defaultdict[tuple[str, str], float] = defaultdict(float)
        self._lock = threading.Lock()

    def on_event(self, event: ObjectEvent) -> None:
        assert event.event_time is not None, "the folder store stamps every event"
        with self._lock:
            self.events.append(event)
            self.visible[event.key] = event.event_time.timestamp()

    def on_start(self, task: Task) -> None:
        now = time.time()
        with self._lock:
            self.start_count += 1
            self.starts.setdefault(task.ident, now)

    def on_outcome(self, outcome: StepOutcome) -> None:
        with self._lock:
            self.outcomes[(outcome.task.step, outcome.outcome)] += 1
            self.outcome_s[(outcome.task.step, outcome.outcome)] += outcome.duration_s

    def wrap(self, registry: PhaseRegistry) -> PhaseRegistry:
        """The same phases, timed at entry and exit."""
        return PhaseRegistry({p.name: self._timed(registry.get(p.name)) for p in registry.table}, table=registry.table)

    def _timed(self, fn: PhaseFn) -> PhaseFn:
        def timed(task: PhaseTask, io: PhaseIO) -> PhaseResult:
            entered = time.time()
            try:
                return fn(task, io)
            finally:
                with self._lock:
                    self.calls.setdefault((task.phase, task.run_key), (entered, time.time()))

        return timed


@dataclass(frozen=True)
class JobTiming:
    """One finished job. `latency[step]`: trigger visible -> task start. `stages`: the critical path,
    consecutive intervals that add up to `wall_s` exactly; `stage_puts`: objects that became visible
    during each (any job's: meaningful when jobs run one at a time)."""

    job_id: str
    wall_s: float
    durations: dict[str, float]  # phase -> the run manifest's duration_s
    latency: dict[str, float]
    to_compute: dict[str, float]  # phase -> trigger visible -> phase function entered
    stages: dict[str, float]
    stage_puts: dict[str, int]

    @property
    def phase_sum_s(self) -> float:
        return sum(self.durations.values())

    @property
    def critical_path_s(self) -> float:
        rest = sum(s for p, s in self.durations.items() if p not in FIRST_STAGE)
        return max(self.durations[p] for p in FIRST_STAGE) + rest


def job_timing(store: ObjectStore, timeline: Timeline, job_id: str, put_at: float) -> JobTiming:
    """`put_at`: time.time() just before the job's first input put."""
    plan = load_plan(store, job_id)
    if plan is None:
        raise LookupError(f"job {job_id} has no plan")
    durations = {}
    for p in PHASES:
        manifest = run_manifest(store, p.name, plan.run(p.name).key)
        if manifest is None:
            raise LookupError(f"job {job_id}: {p.name} has no run manifest")
        durations[p.name] = manifest.duration_s
    seen, starts = timeline.visible, timeline.starts
    latency = {p.name: starts[_ident(plan, p.name)] - _trigger(seen, plan, p.name) for p in PHASES}
    latency["intake"] = starts[f"intake:{job_id}"] - _inputs_visible(seen, job_id)
    latency["publish"] = starts[f"publish:{job_id}"] - seen[_manifest_key(plan, PHASES.names[-1])]
    to_compute = {p.name: _call(timeline, plan, p.name)[0] - _trigger(seen, plan, p.name) for p in PHASES}
    wall = seen[layout.result_manifest_key(job_id)] - put_at
    return JobTiming(job_id, wall, durations, latency, to_compute, *_stages(timeline, plan, put_at))


def _stage_spans(timeline: Timeline, plan: JobPlan, put_at: float) -> list[tuple[str, float, float]]:
    """Consecutive (stage, from, to) intervals along the job's critical path, from `put_at` to its results."""
    seen = timeline.visible
    inputs = _inputs_visible(seen, plan.job_id)
    spans = [("upload", put_at, inputs), ("intake", inputs, seen[layout.plan_key(plan.job_id)])]
    first = max(FIRST_STAGE, key=lambda name: seen[_manifest_key(plan, name)])
    for name in (first, *(p.name for p in PHASES if p.phase_needs)):
        start = timeline.starts[_ident(plan, name)]
        entered, left = _call(timeline, plan, name)
        spans += [("dispatch", _trigger(seen, plan, name), start), ("claim", start, entered),
                  ("compute", entered, left), ("commit", left, seen[_manifest_key(plan, name)])]
    final = seen[_manifest_key(plan, PHASES.names[-1])]
    spans.append(("publish", final, seen[layout.result_manifest_key(plan.job_id)]))
    return spans


def _stages(timeline: Timeline, plan: JobPlan, put_at: float) -> tuple[dict[str, float], dict[str, int]]:
    """Seconds per stage (summed over the three critical phases), and the puts that became visible in it."""
    times = sorted(e.event_time.timestamp() for e in timeline.events if e.event_time is not None)
    seconds: dict[str, float] = {}
    puts: dict[str, int] = {}
    for name, begin, end in _stage_spans(timeline, plan, put_at):
        seconds[name] = seconds.get(name, 0.0) + end - begin
        puts[name] = puts.get(name, 0) + bisect.bisect_right(times, end) - bisect.bisect_right(times, begin)
    return seconds, puts


def _ident(plan: JobPlan, phase_name: str) -> str:
    return f"{phase_name}:{plan.run(phase_name).key}"


def _manifest_key(plan: JobPlan, phase_name: str) -> str:
    return layout.run_manifest_key(phase_name, plan.run(phase_name).key)


def _trigger(seen: dict[str, float], plan: JobPlan, phase_name: str) -> float:
    """When the write that made the phase ready became visible: the latest upstream manifest, or the plan."""
    needs = next(p for p in PHASES if p.name == phase_name).phase_needs
    if not needs:
        return seen[layout.plan_key(plan.job_id)]
    return max(seen[_manifest_key(plan, n)] for n in needs)


def _inputs_visible(seen: dict[str, float], job_id: str) -> float:
    prefix = layout.incoming_prefix(job_id)
    return max(t for key, t in seen.items() if key.startswith(prefix))


def _call(timeline: Timeline, plan: JobPlan, phase_name: str) -> tuple[float, float]:
    return timeline.calls[(phase_name, plan.run(phase_name).key)]


def job_keys(store: ObjectStore, job_id: str) -> tuple[str, ...]:
    """Key prefixes of everything written for the job: its inputs, plan, claims, runs and results."""
    plan = load_plan(store, job_id)
    runs = tuple(layout.run_prefix(p.name, plan.run(p.name).key) for p in PHASES) if plan else ()
    steps = tuple(layout.run_prefix(step, job_id) for step in ("intake", "publish", "fail"))
    own = (layout.incoming_prefix(job_id), layout.plan_key(job_id), layout.result_prefix(job_id))
    return (*own, *steps, *runs)


def key_kind(key: str) -> str:
    """A coarse kind of key, to say which duplicate events cost what."""
    name = key.rsplit("/", 1)[-1]
    if key.startswith(layout.INCOMING):
        return "input"
    if name == "_claim.json":
        return "claim"
    if name == "plan.json":
        return "plan"
    if key.startswith(layout.RESULTS):
        return "result manifest" if name == "manifest.json" else "result file"
    if name in ("_manifest.json", "_error.json"):
        return "run manifest"
    if name == "_task.json" or "/_jobs/" in key:
        return "run registration"
    return "run file"
