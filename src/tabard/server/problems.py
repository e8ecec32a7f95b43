"""RFC 9457 problem details: every error the server returns has this one shape.

https://www.rfc-editor.org/rfc/rfc9457 — ``type`` is a stable URI per error code, ``title`` a
short summary, ``status`` the HTTP status, ``detail`` the human explanation. No traceback and no
secret ever reaches a response body.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tabard.errors import (
    Conflict,
    Denied,
    Invalid,
    NotFound,
    TabardError,
    Unauthenticated,
    Unavailable,
)

__all__ = ["PROBLEM_JSON", "install_problem_handlers", "problem_response"]

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://tabard.dev/problems/"
log = logging.getLogger("tabard.server")

_STATUS: list[tuple[type[TabardError], int]] = [
    (Invalid, 400),
    (Unauthenticated, 401),
    (Denied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (Unavailable, 503),
]
_TITLES = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 409: "Conflict", 411: "Length required",
    413: "Payload too large",
    415: "Unsupported media type", 422: "Unprocessable content", 500: "Internal server error",
    503: "Service unavailable",
}


def status_for(error: TabardError) -> int:
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status
    return 500


def problem_response(
    status: int, code: str, detail: str, *, headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": TYPE_BASE + code,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(TabardError)
    async def _tabard(request: Request, exc: TabardError) -> JSONResponse:
        status = status_for(exc)
        headers = {"WWW-Authenticate": 'Bearer realm="tabard"'} if status == 401 else None
        if status == 500:
            log.error("unclassified error", extra={"code": exc.code, "path": request.url.path})
        return problem_response(status, exc.code, exc.message, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        return problem_response(400, "invalid_request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem_response(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", extra={"path": request.url.path})
        return problem_response(500, "internal_error", "the server could not complete the request")
