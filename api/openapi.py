"""The OpenAPI 3.1 document served at ``/openapi.json``, generated from the
app's routes: each route's declared operation (api/endpoint.py) gives its
parameters, body and answers; the answers every route can get from the
middleware (guards, token, limits) are added by the rules those middlewares
apply. A route that is not declared cannot be served undocumented: the
generator refuses it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount

from steptrail.api.auth import PROTECTED_PREFIXES, QUERY_TOKEN_PATHS
from steptrail.api.endpoint import ApiRoute, Args, Operation, operation
from steptrail.api.guards import STATE_CHANGING
from steptrail.api.jsonresponse import json_response
from steptrail.api.limits import STREAM_PATH
from steptrail.api.schemas import COMPONENTS, error_answer, json_answer

INFO = {
    "title": "steptrail",
    "version": "0.1.0",
    "description": "Multi-step jobs whose every step's log lines are exact and live. "
    "Every read answer carries `position`: the event-store position the read model "
    "reflected when it answered. Every error is JSON: "
    '`{"error": {"code", "message", "field"}}`.',
}


def _error_statuses(path: str, method: str, op: Operation) -> set[int]:
    """What the request can be refused with, besides what the handler declares."""
    statuses = {403, *op.errors}  # RequestGuard checks Host and Origin on every request
    for parameter in op.parameters:
        statuses.update(parameter.kind.statuses)
    if op.body is not None:
        statuses.update(op.body.statuses)
    if method in STATE_CHANGING:
        statuses.add(415)
    if path.startswith(PROTECTED_PREFIXES):
        statuses.add(401)
    if path == STREAM_PATH:
        statuses.add(429)
    return statuses


def _operation(path: str, method: str, op: Operation) -> dict[str, Any]:
    responses = {str(status): answer.openapi() for status, answer in sorted(op.answers.items())}
    for status in sorted(_error_statuses(path, method, op)):
        responses[str(status)] = error_answer(status)
    doc: dict[str, Any] = {
        "operationId": op.handler.__name__,
        "summary": op.summary,
        "parameters": [p.openapi() for p in op.parameters],
        "responses": responses,
    }
    if op.description:
        doc["description"] = op.description
    if op.body is not None:
        doc["requestBody"] = op.body.openapi()
    doc["security"] = _security(path, method)
    return doc


SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "serve --token"},
    "query_token": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "the token where a link or EventSource cannot send a header",
    },
}


def _security(path: str, method: str) -> list[dict[str, list[str]]]:
    """The token, when the server has one (``{}``: none needed otherwise)."""
    if not path.startswith(PROTECTED_PREFIXES):
        return [{}]
    ways: list[dict[str, list[str]]] = [{"bearer": []}]
    if method == "GET" and QUERY_TOKEN_PATHS.match(path):
        ways.append({"query_token": []})
    return [*ways, {}]


def _operations(routes: Sequence[BaseRoute], prefix: str = "") -> list[tuple[str, str, Operation]]:
    """``(path, method, operation)`` of every route, mounted ones included
    (the page's static files are a mount without routes)."""
    found = []
    for route in routes:
        if isinstance(route, Mount):
            found += _operations(route.routes, prefix + route.path)
        elif isinstance(route, ApiRoute):
            found += [
                (prefix + route.path, m, route.operation)
                for m in route.methods or ()
                if m != "HEAD"
            ]
        else:
            raise TypeError(f"{route!r} is not declared: make it an ApiRoute (api/endpoint.py)")
    return found


def openapi_document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for path, method, op in _operations(routes):
        paths.setdefault(path, {})[method.lower()] = _operation(path, method, op)
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "paths": paths,
        "components": {"schemas": COMPONENTS, "securitySchemes": SECURITY_SCHEMES},
    }


@operation(
    "This document, generated from the routes the server serves",
    answers={200: json_answer("OpenAPI", "the OpenAPI 3.1 document")},
)
async def openapi(request: Request, args: Args) -> Response:
    return json_response(openapi_document(request.app.routes))
