"""Silence native libraries' one-time start-up chatter (TFLite, absl) on stderr while a model is built.

mediapipe's C++ side prints "Created TensorFlow Lite XNNPACK delegate" and absl warnings straight to file
descriptor 2 the first time its graphs run; no setting turns them off. Used only around one-time builds
(under the backend's lock), so no one else's log line is lost in practice.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
