"""A `dropfit watch` for the stop tests: the CLI's watch loop on a folder bucket with test phases, one worker,
and an avatar phase that never ends by itself for a person STUCK_CM tall (a phase stuck in a model's forward
pass): Ctrl-C must stop the watcher promptly anyway, releasing that run's claim.

    python tests/watch_worker.py BUCKET RUNLOG
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import RunLog, make_fake_registry  # noqa: E402
from functions.app import build_local  # noqa: E402
from functions.cli import watch_bucket  # noqa: E402
from functions.logs import configure  # noqa: E402
from infra.settings import Settings  # noqa: E402
from pipeline.phase_api import PhaseIO, PhaseRegistry, PhaseResult, PhaseTask  # noqa: E402

STUCK_CM = 199


def main() -> None:
    bucket, runlog = sys.argv[1], RunLog(Path(sys.argv[2]))
    fakes = make_fake_registry(runlog)
    never = threading.Event()

    def avatar(task: PhaseTask, io_: PhaseIO) -> PhaseResult:
        if task.spec.person.height_cm == STUCK_CM:
            runlog.record("stuck", task.run_key)
            never.wait()
        return fakes.get("avatar")(task, io_)

    registry = PhaseRegistry({p.name: fakes.get(p.name) for p in fakes.table} | {"avatar": avatar}, table=fakes.table)
    configure("console", "warning")
    local = build_local(bucket, Settings(workers=1, lease_s=30), registry=registry)
    watch_bucket(local, 600.0, grace_s=1.0)


if __name__ == "__main__":
    main()
