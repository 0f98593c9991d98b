"""``/openapi.json`` is generated from the routes the app serves: it lists
exactly them, each with a response schema, and what a real server answers
fits the documented schemas; a documented bound is the one enforced."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import connect_sse
from jsonschema import Draft202012Validator, FormatChecker
from starlette.routing import Mount, Route

from tests.conftest import JSON_HEADERS, LiveServer, start_server

MISSING = str(uuid.uuid4())


@dataclass
class World:
    """A server holding a finished job, a failed one and a long one."""

    live: LiveServer
    doc: dict[str, Any]
    job: dict[str, Any]
    failed: dict[str, Any]
    long: dict[str, Any]
    spare: dict[str, Any]  # ended, for deleting

    @property
    def client(self) -> httpx.Client:
        return self.live.client

    def url(self, template: str) -> str:
        """A documented path with real ids in it."""
        return template.format(job_id=self.job["id"], step_job_id=self.job["steps"][0]["id"])


def _world(live: LiveServer) -> World:
    job = live.wait_job(live.submit("burst", lines=300)["id"])
    failed = live.wait_job(live.submit("failing")["id"], ("failed",))
    long = live.submit("silent", seconds=60)
    spare = live.wait_job(live.submit("burst", lines=3)["id"])
    return World(live, live.client.get("/openapi.json").json(), job, failed, long, spare)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """For what does not depend on the store: the routes, parameters, bounds."""
    live = start_server(Path(tmp_path_factory.mktemp("openapi")) / "data")
    try:
        yield _world(live)
    finally:
        live.stop()


@pytest.fixture
def any_world(any_server: LiveServer) -> World:
    """For answers, which come from the store: on SQLite, then on PostgreSQL."""
    return _world(any_server)


def _served(routes: list[Any], prefix: str = "") -> set[tuple[str, str]]:
    served = set()
    for route in routes:
        if isinstance(route, Mount):
            served |= _served(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            served |= {(m, prefix + route.path) for m in route.methods or () if m != "HEAD"}
    return served


def _documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """``schema`` with the document's components, so its ``$ref`` s resolve."""
    return Draft202012Validator(
        {**schema, "components": doc["components"]}, format_checker=FormatChecker()
    )


def _content(doc: dict[str, Any], method: str, template: str, status: int) -> dict[str, Any]:
    responses = doc["paths"][template][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {template} does not document {status}"
    return responses[str(status)]["content"]  # type: ignore[no-any-return]


def check(doc: dict[str, Any], method: str, template: str, r: httpx.Response) -> None:
    """The answer's status and media type are documented for the route, and
    its JSON body validates against the documented schema."""
    content = _content(doc, method, template, r.status_code)
    if not content:
        assert not r.content, f"{method} {template} documents no body"
        return
    media = r.headers["content-type"]
    assert media in content or media.partition(";")[0] in content, (media, list(content))
    schema = content.get(media) or content[media.partition(";")[0]]
    if media == "application/json":
        _validator(doc, schema["schema"]).validate(r.json())


def test_the_document_lists_exactly_the_served_routes(world: World) -> None:
    app = world.live.server.config.app
    served = _served(app.routes)
    assert ("GET", "/api/stream") in served and ("POST", "/api/jobs") in served
    assert not any(path.startswith("/ui") for _, path in served), "static files are no route"
    assert _documented(world.doc) == served


def test_every_operation_has_answers_with_schemas(world: World) -> None:
    Draft202012Validator.check_schema({"components": world.doc["components"]})
    for schema in world.doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    for path, ops in world.doc["paths"].items():
        for method, op in ops.items():
            statuses = sorted(op["responses"])
            assert any(s.startswith("2") for s in statuses), (method, path)
            assert "403" in statuses, "the host and origin guard answers every route"
            for status, answer in op["responses"].items():
                assert answer["description"], (method, path, status)
                for media, body in answer["content"].items():
                    assert body["schema"], (method, path, status, media)
                    if status.startswith("4"):
                        assert body["schema"] == {"$ref": "#/components/schemas/Error"}
            placeholders = {part[1:-1] for part in path.split("/") if part.startswith("{")}
            in_path = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert in_path == placeholders, (method, path)


def _job_answers(world: World) -> list[tuple[str, str, httpx.Response]]:
    c, job, step = world.client, world.job, world.job["steps"][0]
    logs = c.get("/api/logs", params={"limit": 100, "order": "desc"}).json()
    submitted = c.post("/api/jobs", json={"definition": "burst", "params": {"lines": 3}})
    cancelled = c.post(f"/api/jobs/{world.long['id']}/cancel")
    retried = c.post(f"/api/jobs/{world.failed['id']}/retry", json={})
    return [
        ("GET", "/healthz", c.get("/healthz")),
        ("GET", "/api/definitions", c.get("/api/definitions")),
        ("POST", "/api/jobs", submitted),
        ("GET", "/api/jobs", c.get("/api/jobs", params={"limit": 1})),
        ("GET", "/api/jobs", c.get("/api/jobs", params={"status": "failed"})),
        ("GET", "/api/jobs/{job_id}", c.get(f"/api/jobs/{job['id']}")),
        ("GET", "/api/jobs/{job_id}", c.get(f"/api/jobs/{world.failed['id']}")),
        ("POST", "/api/jobs/{job_id}/cancel", cancelled),
        ("POST", "/api/jobs/{job_id}/retry", retried),
        ("GET", "/api/steps/{step_job_id}", c.get(f"/api/steps/{step['id']}")),
        (
            "GET",
            "/api/steps/{step_job_id}/logs",
            c.get(f"/api/steps/{step['id']}/logs", params={"level": "warning", "limit": 50}),
        ),
        ("GET", "/api/steps/{step_job_id}/groups", c.get(f"/api/steps/{step['id']}/groups")),
        (
            "GET",
            "/api/steps/{step_job_id}/search",
            c.get(f"/api/steps/{step['id']}/search", params={"q": "line", "limit": 3}),
        ),
        ("GET", "/api/jobs", c.get("/api/jobs", params={"q": f"#{job['number']}"})),
        ("DELETE", "/api/jobs/{job_id}", c.delete(f"/api/jobs/{world.spare['id']}")),
        ("GET", "/api/deletions", c.get("/api/deletions")),
        ("GET", "/api/logs", c.get("/api/logs", params={"job_id": job["id"], "limit": 10})),
        ("GET", "/api/logs", c.get("/api/logs", params={"cursor": logs["next_cursor"]})),
        ("GET", "/api/jobs/{job_id}/events", c.get(f"/api/jobs/{job['id']}/events")),
        (
            "GET",
            "/api/jobs/{job_id}/events",
            c.get(f"/api/jobs/{job['id']}/events", params={"lines": "false", "limit": 2}),
        ),
        (
            "GET",
            "/api/jobs/{job_id}/state",
            c.get(f"/api/jobs/{job['id']}/state", params={"version": 2}),
        ),
        ("GET", "/api/steps/{step_job_id}/state", c.get(f"/api/steps/{step['id']}/state")),
        (
            "GET",
            "/api/jobs/{job_id}/replay",
            c.get(f"/api/jobs/{job['id']}/replay", params={"position": step["position"]}),
        ),
        ("GET", "/openapi.json", c.get("/openapi.json")),
        ("GET", "/", c.get("/")),
    ]


def _fanout_answers(world: World) -> list[tuple[str, str, httpx.Response]]:
    """A step that fans out: its roll-up, its children, a child's lines."""
    c = world.client
    job = world.live.submit("fanout", items=5, fail_every=0)
    world.live.wait_job(job["id"])
    step = world.live.job(job["id"])["steps"][0]
    children = c.get(f"/api/steps/{step['id']}/children", params={"limit": 2})
    child = children.json()["children"][0]
    after = children.json()["next_after"]
    return [
        ("GET", "/api/steps/{step_job_id}", c.get(f"/api/steps/{step['id']}")),
        ("GET", "/api/steps/{step_job_id}/children", children),
        (
            "GET",
            "/api/steps/{step_job_id}/children",
            c.get(f"/api/steps/{step['id']}/children", params={"after": after}),
        ),
        (
            "GET",
            "/api/steps/{step_job_id}/children",
            c.get(f"/api/steps/{step['id']}/children", params={"after": "x"}),
        ),
        ("GET", "/api/steps/{step_job_id}/logs", c.get(f"/api/steps/{child['id']}/logs")),
        (
            "GET",
            "/api/logs",
            c.get("/api/logs", params={"parent_step_job_id": step["id"], "limit": 3}),
        ),
    ]


def _error_answers(world: World) -> list[tuple[str, str, httpx.Response]]:
    c = world.client
    return [
        ("GET", "/api/logs", c.get("/api/logs", params={"limit": 0})),
        ("GET", "/api/jobs/{job_id}", c.get(f"/api/jobs/{MISSING}")),
        ("GET", "/api/jobs/{job_id}/events", c.get(f"/api/jobs/{MISSING}/events")),
        ("POST", "/api/jobs/{job_id}/cancel", c.post(f"/api/jobs/{world.job['id']}/cancel")),
        ("POST", "/api/jobs", c.post("/api/jobs", json={"definition": "nope"})),
        ("POST", "/api/jobs", c.post("/api/jobs", json={"definition": "burst", "x": 1})),
        (
            "POST",
            "/api/jobs",
            c.post("/api/jobs", content=b"{}", headers={"Content-Type": "text/plain"}),
        ),
        ("GET", "/api/jobs", c.get("/api/jobs", headers={"Host": "evil.example"})),
        ("GET", "/api/stream", c.get("/api/stream", params={"after": "-1"})),
    ]


def test_real_answers_fit_their_documented_schemas(any_world: World) -> None:
    world = any_world
    answers = _job_answers(world)
    fanout = _fanout_answers(world)
    answers += [a for a in fanout if a[2].status_code < 400]
    errors = _error_answers(world) + [a for a in fanout if a[2].status_code >= 400]
    assert {r.status_code for *_, r in answers} == {200, 201, 202}
    assert {r.status_code for *_, r in errors} == {400, 403, 404, 409, 415, 422}
    for method, template, r in answers + errors:
        check(world.doc, method, template, r)

    # Every documented JSON answer of a route was checked above (the stream
    # and downloads are checked below).
    json_routes = {
        (method.upper(), path)
        for path, ops in world.doc["paths"].items()
        for method, op in ops.items()
        if any("application/json" in a["content"] for s, a in op["responses"].items() if s < "300")
    }
    assert json_routes == {(m, t) for m, t, _ in answers if t != "/"}


def test_downloads_fit_their_documented_media_types(any_world: World) -> None:
    world = any_world
    template = "/api/steps/{step_job_id}/logs/download"
    content = _content(world.doc, "GET", template, 200)
    url = world.url(template)
    text = world.client.get(url)
    check(world.doc, "GET", template, text)
    assert text.text.count("\n") == world.job["steps"][0]["counts"]["total"]
    ndjson = world.client.get(url, params={"format": "ndjson"})
    check(world.doc, "GET", template, ndjson)
    line = _validator(world.doc, content["application/x-ndjson"]["schema"]["x-item-schema"])
    for raw in ndjson.text.splitlines():
        line.validate(orjson.loads(raw))


def test_stream_messages_fit_their_documented_schemas(any_world: World) -> None:
    world = any_world
    content = _content(world.doc, "GET", "/api/stream", 200)["text/event-stream"]["schema"]
    schemas = {event: _validator(world.doc, s) for event, s in content["x-events"].items()}
    job = world.job
    seen: set[str] = set()
    with (
        httpx.Client(base_url=world.live.base_url, timeout=10) as client,
        connect_sse(
            client, "GET", "/api/stream", params={"job_id": job["id"], "lines": "all", "after": 0}
        ) as source,
    ):
        assert source.response.headers["content-type"].startswith("text/event-stream")
        for event in source.iter_sse():
            schemas[event.event].validate(orjson.loads(event.data))
            seen.add(event.event)
            if event.event == "job" and event.json()["status"] == "succeeded":
                break
    assert seen == set(schemas)


def _bad_values(schema: dict[str, Any]) -> list[str]:
    """Values just outside what ``schema`` documents."""
    bad = []
    if "maximum" in schema:
        bad.append(str(schema["maximum"] + 1))
    if "minimum" in schema:
        bad.append(str(schema["minimum"] - 1))
    if "enum" in schema:
        bad.append("not-" + "-".join(schema["enum"]))
    if schema.get("type") == "integer":
        bad.append("1.5")
    return bad


def test_documented_bounds_are_the_enforced_ones(world: World) -> None:
    checked = 0
    for template, ops in world.doc["paths"].items():
        op = ops.get("get")
        if op is None:
            continue
        required = {
            p["name"]: str(p["schema"].get("minimum", ""))
            for p in op["parameters"]
            if p["required"] and p["in"] == "query"
        }
        for p in op["parameters"]:
            if p["in"] == "path":
                continue
            for value in _bad_values(p["schema"]):
                if p["in"] == "header":
                    params, headers = required, {p["name"]: value}
                else:
                    params, headers = {**required, p["name"]: value}, {}
                r = world.client.get(world.url(template), params=params, headers=headers)
                assert r.status_code == 400, (template, p["name"], value, r.text)
                assert r.json()["error"]["field"] == p["name"], (template, r.text)
                checked += 1
    assert checked > 30

    # The logs limit: its documented maximum is accepted, one more refused.
    limit = next(
        p["schema"]
        for p in world.doc["paths"]["/api/logs"]["get"]["parameters"]
        if p["name"] == "limit"
    )
    assert world.client.get("/api/logs", params={"limit": limit["maximum"]}).status_code == 200
    r = world.client.get("/api/logs", params={"limit": limit["maximum"] + 1})
    assert r.status_code == 400 and r.json()["error"]["field"] == "limit"
    assert str(limit["maximum"]) in r.json()["error"]["message"]


def test_a_submitted_body_follows_its_documented_fields(world: World) -> None:
    body = world.doc["paths"]["/api/jobs"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert schema["required"] == ["definition"]
    assert set(schema["properties"]) == {"definition", "params"}
    r = world.client.post(
        "/api/jobs", json={"definition": "burst", "params": {"lines": 1}, "priority": 1}
    )
    assert r.status_code == 400 and r.json()["error"]["field"] == "priority"
    r = world.client.post("/api/jobs", content=b"", headers=JSON_HEADERS)
    assert r.status_code == 422 and r.json()["error"]["field"] == "definition"
