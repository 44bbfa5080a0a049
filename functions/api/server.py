"""The API served by uvicorn in a thread of this process: `dropfit serve` runs it next to the local runtime
(the watcher and the sweeps of `dropfit watch`), and tests start it on 127.0.0.1 on a free port."""

from __future__ import annotations

import threading
import time

import uvicorn
from fastapi import FastAPI

GRACE_S = 2.0  # at a stop: how long open requests (an event stream) may finish


class ApiServer:
    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 8000) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=int(GRACE_S), access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="dropfit-api", daemon=True)
        self.host = host

    def start(self, timeout_s: float = 15.0) -> ApiServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the API server did not start on {self.host} (is the port taken?)")
            time.sleep(0.02)
        return self

    @property
    def port(self) -> int:
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=GRACE_S + 5.0)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
