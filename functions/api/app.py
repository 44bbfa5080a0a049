"""The ASGI app: /v1/jobs, /v1/batches (bearer keys), /healthz, /readyz, /openapi.json and /docs (open)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from functions.api import batches, errors, jobs
from functions.api.auth import KeyCheck
from functions.api.config import ApiConfig
from functions.api.models import Problem
from pipeline import layout
from pipeline.backends.table import BACKENDS

DESCRIPTION = """Run try-on jobs over HTTP. Create a job (`POST /v1/jobs`), put its two photos where the answer
says, follow it (`GET /v1/jobs/{id}/events`, or poll `GET /v1/jobs/{id}`), fetch the result links. Every refusal
is a JSON body with `error` (what is wrong) and `user_action` (what to do)."""
REFUSALS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": words} for code, words in (
        (401, "no API key"), (403, "an API key that is not accepted"), (404, "no such job, batch or file"),
        (409, "a conflict: the id is taken, or the Idempotency-Key was used for another request"),
        (413, "too large"), (415, "not a JPEG, PNG or WebP photo, or a body type not accepted"),
        (422, "invalid fields, or a photo that cannot be used"))}


def create_api(config: ApiConfig) -> FastAPI:
    app = FastAPI(title="dropfit jobs API", version="1", description=DESCRIPTION)
    errors.install(app)
    bearer = HTTPBearer(auto_error=False, description="an API key (`dropfit api-key` makes one)")
    guarded = [Depends(bearer), Depends(KeyCheck(config.key_hashes))]
    app.include_router(jobs.router(config), dependencies=guarded, responses=REFUSALS)
    app.include_router(batches.router(config), dependencies=guarded, responses=REFUSALS)
    app.include_router(jobs.links_router(config), responses=REFUSALS)  # the signature is the credential

    @app.get("/healthz", tags=["health"], summary="The server is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="The store answers, the backends plan, the model cache exists")
    async def readyz() -> JSONResponse:
        checks = await run_in_threadpool(readiness, config)
        ready = all(check["ok"] for check in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    return app


def readiness(config: ApiConfig) -> dict[str, dict[str, Any]]:
    checks: dict[str, dict[str, Any]] = {}
    try:
        next(iter(config.store.list(f"{layout.WORK}api/")), None)
        checks["store"] = {"ok": True, "bucket": config.store.bucket}
    except Exception as exc:  # noqa: BLE001 - any failure to list means the store is not reachable
        checks["store"] = {"ok": False, "bucket": config.store.bucket, "error": f"{type(exc).__name__}: {exc}"}
    try:
        plan = BACKENDS.plan(config.profile, config.backends)
        checks["backends"] = {"ok": True, "profile": config.profile, "plan": {k: str(v) for k, v in plan.items()}}
    except ValueError as exc:
        checks["backends"] = {"ok": False, "profile": config.profile, "error": str(exc)}
    missing = config.registry.missing()
    checks["phases"] = {"ok": not missing, "missing": missing}
    cache = config.model_cache
    checks["model_cache"] = ({"ok": cache.is_dir(), "path": str(cache)} if cache is not None else
                             {"ok": True, "path": None, "note": "not on this server: the phases run elsewhere"})
    return checks
