"""Every error leaves the API as JSON: ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from steptrail.api.headers import SECURITY_HEADERS
from steptrail.api.jsonresponse import json_response

log = logging.getLogger("steptrail.api")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers


def bad_request(message: str, field: str | None = None) -> ApiError:
    return ApiError(400, "bad_request", message, field)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def _body(code: str, message: str, field: str | None) -> dict[str, object]:
    error: dict[str, object] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {"error": error}


def error_response(exc: ApiError) -> Response:
    return json_response(_body(exc.code, exc.message, exc.field), exc.status, exc.headers)


async def refuse(error: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer a request with ``error`` from a middleware, before any route runs."""
    await error_response(error)(scope, receive, send)


async def api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return json_response(_body(code, str(exc.detail), None), exc.status_code, exc.headers)


async def server_error(_: Request, exc: Exception) -> Response:
    # Made outside every middleware, this answer carries the security headers itself.
    log.exception("unhandled error", exc_info=exc)
    return json_response(
        _body("internal", f"{type(exc).__name__}: {exc}", None), 500, SECURITY_HEADERS
    )


EXCEPTION_HANDLERS = {ApiError: api_error, HTTPException: http_error, Exception: server_error}
