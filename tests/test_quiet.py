"""Native start-up chatter is silenced while a model builds, and nothing else: our structured log lines (from
any thread) and a native line worth seeing still reach stderr. A real subprocess, since fd 2 is process-wide."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r'''
import os, threading, time
import structlog
from functions.logs import configure
from pipeline.backends.quiet import native_stderr_silenced

configure("console", "info")
log = structlog.get_logger("test")
first_in, second_out = threading.Event(), threading.Event()

def other_build():
    with native_stderr_silenced():  # a second backend warming up on another worker, overlapping the first
        first_in.wait()
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    second_out.set()

builder = threading.Thread(target=other_build)
builder.start()
with native_stderr_silenced():
    first_in.set()
    os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    os.write(2, b"W0000 00:00:1700000000.123456    1234 inference_feedback_manager.cc:114] Feedback manager\n")
    log.info("during.build")
    worker = threading.Thread(target=lambda: log.info("from.another.worker"))
    worker.start()
    worker.join()
    os.write(2, b"a native error worth seeing\n")
    second_out.wait()
builder.join()
log.info("after.build")
os.write(2, b"fd 2 is back\n")
'''


def test_native_chatter_is_silenced_and_log_lines_are_not() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    err = result.stderr
    for wanted in ("during.build", "from.another.worker", "after.build", "a native error worth seeing",
                   "fd 2 is back"):
        assert wanted in err, (wanted, err)
    for chatter in ("XNNPACK", "W0000", "absl::InitializeLog"):
        assert chatter not in err, (chatter, err)
