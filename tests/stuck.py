"""A phase that does not end by itself (stuck in a model's forward pass, say), for the tests of what must not
wait behind it: publishing, reading the event queue, stopping a worker."""

from __future__ import annotations

import threading

from fakes import RunLog, make_fake_registry
from pipeline.phase_api import PhaseIO, PhaseRegistry, PhaseResult, PhaseTask

STUCK_CM = 199  # the person height that makes the gated phase of a job wait


def gated(log: RunLog, phase: str, gate: threading.Event, started: threading.Event) -> PhaseRegistry:
    """The test phases, where `phase` of a job whose person is STUCK_CM tall sets `started`, then waits for `gate`
    (at most two minutes, so a failed test cannot hang the suite)."""
    fakes = make_fake_registry(log)
    real = fakes.get(phase)

    def waits(task: PhaseTask, io_: PhaseIO) -> PhaseResult:
        if task.spec.person.height_cm == STUCK_CM:
            started.set()
            gate.wait(120)
        return real(task, io_)

    return PhaseRegistry({p.name: fakes.get(p.name) for p in fakes.table} | {phase: waits}, table=fakes.table)
