"""Benchmark of the jobs HTTP API: what a request adds to reading the job's state from storage.

    .venv/bin/python -m bench.api [--requests 500] [--out bench/out/api.json] [--tmp DIR]

Run it from the repository root (it uses the fake phases of tests/fakes.py for the job it reads). One job runs
to the end on a folder bucket; then, one request at a time over a kept-alive connection to a uvicorn server on
127.0.0.1 with an API key configured:

1. `GET /v1/jobs/{id}` of the finished job (its 9 result links), over HTTP, p50/p99;
2. the same state read in-process (`functions.api.views.job_view`, what the route calls), p50/p99: the storage
   reads every answer costs whatever serves it;
3. `GET /healthz` over HTTP, p50/p99: the HTTP server, the framework and the key check alone.

The API's added latency is (1) minus (2). A benchmark, not a test: it prints and writes the numbers, exit 0.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import requests
import typer
from rich.console import Console
from rich.table import Table

from bench.results import summary_ms
from functions.api import ApiConfig, create_api
from functions.api.auth import key_hash
from functions.api.server import ApiServer
from functions.api.views import job_view
from functions.app import build_local
from functions.logs import configure
from infra.settings import Settings
from pipeline import layout
from pipeline.manifests import FileEntry
from pipeline.state import job_settled, load_plan
from tests.fakes import RunLog, make_fake_registry, photo

KEY = "dfk_bench"
JOB = "bench-job"


def timed(call: Any, n: int) -> list[float]:
    seconds = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def measure(root: Path, n: int) -> dict[str, Any]:
    local = build_local(root / "bucket", Settings(), registry=make_fake_registry(RunLog(root / "runs.log")))
    store = local.store
    with local.runtime:
        store.put(layout.incoming_image_key(JOB, "person", "jpg"), photo((200, 40, 40)))
        store.put(layout.incoming_image_key(JOB, "garment", "jpg"), photo((40, 40, 200)))
        plan_done = lambda: (plan := load_plan(store, JOB)) is not None and job_settled(store, plan)  # noqa: E731
        assert local.runtime.run_until(plan_done, timeout=60), "the benchmark's job did not finish"
    server = ApiServer(create_api(ApiConfig(store, local.registry, key_hashes=(key_hash(KEY),))), "127.0.0.1", 0)
    server.start()
    try:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {KEY}"
        url = f"{server.url}/v1/jobs/{JOB}"
        assert session.get(url, timeout=10).json()["state"] == "succeeded"
        warm = max(10, n // 10)
        timed(lambda: session.get(url, timeout=10), warm)
        over_http = timed(lambda: session.get(url, timeout=10).raise_for_status(), n)
        health = timed(lambda: session.get(f"{server.url}/healthz", timeout=10).raise_for_status(), n)
    finally:
        server.stop()

    def link(job_id: str, entry: FileEntry) -> str:
        return f"http://127.0.0.1/v1/jobs/{job_id}/results/{entry.name}"

    in_process = timed(lambda: job_view(store, local.registry, JOB, link), n)
    http, direct = summary_ms(over_http), summary_ms(in_process)
    return {"get_job_http_ms": http, "get_job_in_process_ms": direct, "healthz_http_ms": summary_ms(health),
            "added_ms": {"p50": round(http["p50"] - direct["p50"], 3), "p99": round(http["p99"] - direct["p99"], 3)}}


def main(
    n: Annotated[int, typer.Option("--requests", help="requests of each kind")] = 500,
    out: Annotated[Path, typer.Option("--out", help="the JSON report")] = Path("bench/out/api.json"),
    tmp: Annotated[Path | None, typer.Option("--tmp", help="folder for the bucket (default: temp)")] = None,
) -> None:
    configure("console", "warning")
    with tempfile.TemporaryDirectory(prefix="dropfit-bench-api-", dir=tmp) as folder:
        results = measure(Path(folder), n)
    doc = {"benchmark": "dropfit jobs API", "machine": {"python": platform.python_version(),
                                                        "platform": platform.platform()},
           "parameters": {"requests": n, "bucket": "FolderStore", "server": "uvicorn, one request at a time"},
           "results": results}
    table = Table(title=f"GET /v1/jobs/{{id}} of a finished job, {n} requests each")
    for column in ("what", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column)
    for name, key in (("over HTTP", "get_job_http_ms"), ("in process (storage reads)", "get_job_in_process_ms"),
                      ("GET /healthz over HTTP", "healthz_http_ms")):
        row = results[key]
        table.add_row(name, f"{row['p50']:.2f}", f"{row['p99']:.2f}", f"{row['max']:.2f}")
    table.add_row("added by the API", f"{results['added_ms']['p50']:.2f}", f"{results['added_ms']['p99']:.2f}", "")
    Console().print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
