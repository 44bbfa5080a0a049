"""The API's one error: an HTTP status, what is wrong, what to do. Every refusal leaves as a `Problem` body."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from functions.api.models import Problem
from pipeline.errors import InvalidInput

HINTS = {
    401: "send the header 'Authorization: Bearer <key>' with a key the operator gave you",
    404: "check the path and the id (GET /docs lists every endpoint)",
    405: "use the method GET /docs shows for this path",
}


class ApiError(Exception):
    def __init__(self, status: int, error: str, user_action: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.user_action = user_action
        self.headers = headers


def refused(exc: InvalidInput, status: int = 422) -> ApiError:
    return ApiError(status, exc.reason, exc.user_action)


def problem(status: int, error: str, user_action: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = Problem(status=status, error=error, user_action=user_action)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Every error as a Problem: ours, FastAPI's validation errors (422) and Starlette's (404, 405, ...)."""

    @app.exception_handler(ApiError)
    async def _ours(request: Request, exc: ApiError) -> JSONResponse:
        return problem(exc.status, exc.error, exc.user_action, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        return problem(422, f"the request is invalid: {where}", "correct those fields (GET /docs shows them)")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), HINTS.get(exc.status_code, "see GET /docs"),
                       dict(exc.headers or {}))
