"""Silence native libraries' one-time start-up chatter (TFLite, absl) on stderr while a model is built, and
nothing else.

mediapipe's C++ side prints "Created TensorFlow Lite XNNPACK delegate" and absl warnings straight to file
descriptor 2 the first time its graphs run; no setting turns them off. So, while a build runs, fd 2 (which
every thread shares) goes to a capture file, and Python's own `sys.stderr` writes (our structured log lines,
from any thread) go meanwhile to a duplicate of the real stderr: no log line is lost or held back. When the
last build ends, fd 2 is restored and what the capture holds is replayed, less the known start-up lines.
Builds may overlap (two backends warming up on two workers): the first one in redirects, the last one out
restores.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TextIO

# What TFLite, absl and glog print when a graph first runs: "INFO: Created TensorFlow Lite XNNPACK delegate for
# CPU.", "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR", and glog-style
# lines such as "W0000 00:00:1700000000.123456    1234 inference_feedback_manager.cc:114] ...".
CHATTER = re.compile(rb"^(?:INFO: |WARNING: All log messages before absl|[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ )")

_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None
_capture: IO[bytes] | None = None
_python_stderr: TextIO | None = None  # what sys.stderr was before a build swapped it
_real_stderr: TextIO | None = None  # one text stream on a duplicate of the real fd 2, kept for the process


def _stream_on_fd2() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


def _enter() -> None:
    global _depth, _saved_fd, _capture, _python_stderr, _real_stderr
    with _lock:
        _depth += 1
        if _depth > 1:
            return
        sys.stderr.flush()
        _saved_fd = os.dup(2)
        if _stream_on_fd2():  # Python's writes keep their destination, not fd 2's new one
            if _real_stderr is None:
                _real_stderr = os.fdopen(os.dup(2), "w", buffering=1, encoding=sys.stderr.encoding,
                                         errors=sys.stderr.errors)
            _python_stderr, sys.stderr = sys.stderr, _real_stderr
        _capture = tempfile.TemporaryFile()
        os.dup2(_capture.fileno(), 2)


def _exit() -> None:
    global _depth, _saved_fd, _capture, _python_stderr
    with _lock:
        _depth -= 1
        if _depth > 0 or _saved_fd is None or _capture is None:
            return
        os.dup2(_saved_fd, 2)
        os.close(_saved_fd)
        _saved_fd = None
        if _python_stderr is not None:
            sys.stderr.flush()
            sys.stderr = _python_stderr
            _python_stderr = None
        capture, _capture = _capture, None
    with capture:
        capture.seek(0)
        kept = b"".join(line for line in capture if not CHATTER.match(line))
    if kept:
        sys.stderr.flush()
        os.write(2, kept)


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    _enter()
    try:
        yield
    finally:
        _exit()
