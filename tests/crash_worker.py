"""A worker process for the crash test: runs one job on a folder bucket with test phases until done.

    python tests/crash_worker.py BUCKET RUNLOG JOB_ID --slow-phase fitting --slow-s 30 --lease-s 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import RunLog, make_fake_registry  # noqa: E402
from functions.app import build_local  # noqa: E402
from infra.settings import Settings  # noqa: E402
from pipeline.state import job_status, load_plan  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bucket")
    parser.add_argument("runlog")
    parser.add_argument("job_id")
    parser.add_argument("--slow-phase", default=None)
    parser.add_argument("--slow-s", type=float, default=0.0)
    parser.add_argument("--lease-s", type=float, default=2.0)
    args = parser.parse_args()
    registry = make_fake_registry(RunLog(Path(args.runlog)), slow_phase=args.slow_phase, slow_s=args.slow_s)
    local = build_local(args.bucket, Settings(lease_s=args.lease_s), registry=registry)

    def finished() -> bool:
        plan = load_plan(local.store, args.job_id)
        return plan is not None and job_status(local.store, plan) != "running"

    with local.runtime:
        local.runtime.run_until(finished, timeout=120)


if __name__ == "__main__":
    main()
