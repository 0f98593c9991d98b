"""Parameter declarations, without a server: what they accept, the 4xx that
names a bad one, and the OpenAPI text generated from the same declaration."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from steptrail.api.endpoint import ApiRoute, Args, operation
from steptrail.api.errors import ApiError
from steptrail.api.openapi import openapi_document
from steptrail.api.params import (
    LEVEL,
    MAX_INTEGER,
    Body,
    BodyField,
    Choice,
    Id,
    Integer,
    Text,
    Time,
    Uuid,
    header,
    limit,
    path,
    query,
)
from steptrail.api.schemas import STRING, json_answer

JOB = "0b7c2a43-4f0e-4a55-9d3a-2f4b8c6e1d20"


def request(
    query_string: str = "",
    path_params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": query_string.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "path_params": path_params or {},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


def refusal(fn: Any, *args: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        fn(*args)
    return caught.value


def test_an_integer_is_parsed_within_its_bounds_and_absent_means_default() -> None:
    rows = limit(500)
    assert rows.read(request("limit=5000")) == 5000
    assert rows.read(request("")) == 500
    assert rows.read(request("limit=")) == 500
    for raw, words in (
        ("0", "limit must be between 1 and 5000, got 0"),
        ("5001", "limit must be between 1 and 5000, got 5001"),
        ("many", "limit must be an integer, got 'many'"),
        ("1.5", "limit must be an integer"),
    ):
        error = refusal(rows.read, request(f"limit={raw}"))
        assert (error.status, error.field) == (400, "limit")
        assert words in error.message
    before = query("before", Integer(1), "page cursor")
    error = refusal(before.read, request("before=" + "9" * 30))
    assert f"between 1 and {MAX_INTEGER}" in error.message


def test_a_required_parameter_says_what_it_wants() -> None:
    position = query("position", Integer(0), "a store position", required=True)
    error = refusal(position.read, request(""))
    assert (error.status, error.field) == (400, "position")
    assert error.message == "position is required: a store position"
    assert position.read(request("position=0")) == 0


def test_levels_choices_text_and_times() -> None:
    assert LEVEL.read(request("level=WARNING")) == LEVEL.read(request("level=warning")) == 30
    assert "unknown level 'loud'" in refusal(LEVEL.read, request("level=loud")).message
    order = query("order", Choice(("asc", "desc")), "order", "asc")
    assert order.read(request("")) == "asc"
    assert refusal(order.read, request("order=sideways")).field == "order"
    text = query("q", Text(), "text")
    assert text.read(request("q=caf%C3%A9")) == "café"
    assert "NUL" in refusal(text.read, request("q=a%00b")).message
    since = query("since", Time(), "since")
    noon = datetime(2026, 11, 24, 10, tzinfo=UTC).timestamp()
    assert since.read(request("since=2026-11-24T10:00:00Z")) == noon
    assert since.read(request("since=2026-11-24T11:00:00%2B01:00")) == noon
    assert since.read(request("since=1795514400.5")) == 1795514400.5
    assert "time zone" in refusal(since.read, request("since=2026-11-24T10:00:00")).message
    assert "ISO 8601" in refusal(since.read, request("since=yesterday")).message


def test_ids_are_canonical_and_a_path_id_that_cannot_be_one_is_not_found() -> None:
    job_id = query("job_id", Uuid(), "a job")
    assert job_id.read(request(f"job_id={JOB.upper()}")) == JOB
    assert refusal(job_id.read, request("job_id=nope")).status == 400
    in_path = path("job_id", Id("job"))
    assert in_path.read(request(path_params={"job_id": JOB.replace("-", "").upper()})) == JOB
    error = refusal(in_path.read, request(path_params={"job_id": "xyz"}))
    assert (error.status, error.message) == (404, "no job with id 'xyz'")
    assert refusal(in_path.read, request(path_params={"job_id": "a\x00"})).status == 400


def test_a_header_parameter() -> None:
    last = header("Last-Event-ID", Integer(0), "resume after")
    assert last.read(request(headers={"Last-Event-ID": "42"})) == 42
    assert last.read(request()) is None
    assert refusal(last.read, request(headers={"Last-Event-ID": "x"})).field == "Last-Event-ID"


def test_the_document_shows_the_declared_bounds_defaults_and_help() -> None:
    assert limit(500).openapi() == {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "rows per page",
        "schema": {"type": "integer", "minimum": 1, "maximum": 5000, "default": 500},
    }
    assert path("step_job_id", Id("step")).openapi()["required"] is True
    assert LEVEL.openapi()["schema"]["enum"] == ["debug", "info", "warning", "error", "critical"]


BODY = Body((BodyField("definition", STRING, "name", required=True), BodyField("n", STRING, "")))


@pytest.mark.parametrize(
    ("raw", "words", "field"),
    [
        (b"{not json", "not valid JSON", None),
        (b"[1]", "must be a JSON object", None),
        (b'{"definition": "x", "extra": 1}', "unknown field 'extra'", "extra"),
    ],
)
def test_a_bad_body_is_a_400(raw: bytes, words: str, field: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        asyncio.run(BODY.read(request(body=raw)))
    assert caught.value.status == 400 and words in caught.value.message
    assert caught.value.field == field


def test_a_body_gives_every_declared_field() -> None:
    assert asyncio.run(BODY.read(request(body=b""))) == {"definition": None, "n": None}
    assert asyncio.run(BODY.read(request(body=b'{"n": "1"}'))) == {"definition": None, "n": "1"}
    schema = BODY.openapi()["content"]["application/json"]["schema"]
    assert schema["required"] == ["definition"] and schema["additionalProperties"] is False


@operation(
    "Echo",
    path("job_id", Id("job")),
    query("a", Integer(0), "first"),
    query("b", Integer(0), "second"),
    answers={200: json_answer("Error", "whatever")},
)
async def echo(request: Request, args: Args) -> Response:
    return JSONResponse(dict(args))


def test_an_operation_parses_in_declared_order_before_its_handler() -> None:
    ok = asyncio.run(echo.respond(request("a=1", {"job_id": JOB})))
    assert bytes(ok.body) == b'{"job_id":"' + JOB.encode() + b'","a":1,"b":null}'
    with pytest.raises(ApiError) as caught:
        asyncio.run(echo.respond(request("b=x&a=y", {"job_id": JOB})))
    assert caught.value.field == "a"


def test_routes_must_declare_their_path_parameters_and_be_declared() -> None:
    with pytest.raises(ValueError, match="path parameters"):
        ApiRoute("GET", "/api/things/{thing_id}", echo)
    with pytest.raises(TypeError, match="not declared"):
        openapi_document([Route("/plain", echo.respond)])


def test_the_guards_answers_are_added_by_their_rules() -> None:
    doc = openapi_document(
        [
            ApiRoute("GET", "/healthz/{job_id}", echo),
            ApiRoute("POST", "/api/x/{job_id}", echo),
        ]
    )
    statuses = {
        path: sorted(ops[next(iter(ops))]["responses"]) for path, ops in doc["paths"].items()
    }
    assert statuses["/healthz/{job_id}"] == ["200", "400", "403", "404"]
    assert statuses["/api/x/{job_id}"] == ["200", "400", "401", "403", "404", "415"]
