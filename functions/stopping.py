"""Stopping a local runtime the way a person at a terminal needs: at once, saying what is still finishing,
what was left for the next worker, and which deliveries go on from the outbox."""

from __future__ import annotations

import atexit
import faulthandler
import logging
import os
import sys
import threading

from rich.console import Console

from events.tasks import Task
from functions.runtime import LocalRuntime

MOMENT_S = 1.0  # what may still run at a stop without a word (a publish telling its subscribers)
STOP_SLACK_S = 15.0  # on top of a stop's own waits: closing the watcher, the pools, the interpreter's exit


def arm_stop_deadline(seconds: float) -> None:
    """Once a stop begins, the process ends within `seconds` whatever hangs (a library thread that never
    returns, an exit that waits on a stuck thread): past it, every thread's stack goes to stderr, so the hang
    can be found, and the process exits with status 1. Claims still held expire with their lease; the outbox is
    on disk. Never disarmed: it covers the interpreter's own exit too."""
    sys.stderr.flush()
    faulthandler.dump_traceback_later(seconds, exit=True)


def exit_now(code: int) -> None:
    """End the process with `code` once the command is done, without the interpreter's teardown: freeing
    torch's, mediapipe's and dlib's objects and modules one by one took 1 to 2.5 s after the last line was
    printed (measured on a `dropfit run`). Output is flushed and the atexit handlers run first; where a
    non-daemon thread is still alive the normal exit (which waits for it) is kept."""
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can reach it
            pass
    os._exit(code)


def shut_down(console: Console, runtime: LocalRuntime, *, grace_s: float, deliveries_s: float, announce: bool) -> None:
    """Stop the runtime promptly and say what happened: queued tasks dropped (still due in storage), running
    ones given `grace_s` (a second Ctrl-C cuts it short) and then released, deliveries waited for briefly."""
    dropped, _ = runtime.close()
    if announce and dropped:
        console.print(f"  {_count(dropped, 'queued task')} not started: storage still says they are due, so the "
                      "next sweep (here or by any worker) runs them", highlight=False)
    try:
        finished = runtime.wait_running(min(grace_s, MOMENT_S))  # most steps end in a moment: say nothing
        if not finished:
            console.print(f"  still finishing: {_describe(runtime, runtime.running)}; waiting up to "
                          f"{grace_s:.0f} s (Ctrl-C again to stop now)", highlight=False)
            finished = runtime.wait_running(max(0.0, grace_s - MOMENT_S))
    except KeyboardInterrupt:
        finished = False
    if not finished:
        released = runtime.release_running()
        if released:
            console.print(f"  released the claims of {_describe(runtime, released)}: another worker takes them "
                          "over at once", highlight=False)
    try:
        left = runtime.settle_deliveries(deliveries_s)
    except KeyboardInterrupt:
        left = runtime.handlers.settle_deliveries(0.0)
    if left:
        console.print(f"  {_count(left, 'delivery', 'deliveries')} to subscribers still in progress: the outbox "
                      "(work/outbox/) keeps them, and `dropfit watch` or `dropfit sweep` retries them when due",
                      highlight=False)
    runtime.stop(grace_s=0.0, deliveries_s=0.0)


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _describe(runtime: LocalRuntime, tasks: list[Task]) -> str:
    parts = []
    for task in tasks:
        try:
            jobs = runtime.handlers.jobs_of(task)
        except Exception:  # noqa: BLE001 - a description must not fail a stop
            jobs = []
        shown = ", ".join(jobs[:3]) + (f", +{len(jobs) - 3}" if len(jobs) > 3 else "")
        parts.append(f"{task.step} ({'job ' + shown if shown else task.subject[:12]})")
    return "; ".join(parts)
