"""Issue 2, show 4: bad input gets a 4xx JSON error naming the problem, and
nothing is written to the event store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveServer, start_server

MISSING = str(uuid.uuid4())

CASES = [
    # (method, path, body or params, status, words the message must contain, field)
    ("POST", "/api/jobs", b"{not json", 400, "not valid JSON", None),
    ("POST", "/api/jobs", b"[1, 2]", 400, "JSON object", None),
    ("POST", "/api/jobs", {"definition": "nope"}, 422, "unknown definition 'nope'", "definition"),
    ("POST", "/api/jobs", {"params": {}}, 422, "definition must be", "definition"),
    (
        "POST",
        "/api/jobs",
        {"definition": "burst", "params": {"lines": "ten"}},
        422,
        "'lines' must be integer",
        "params.lines",
    ),
    (
        "POST",
        "/api/jobs",
        {"definition": "burst", "params": {"lines": True}},
        422,
        "'lines' must be integer",
        "params.lines",
    ),
    (
        "POST",
        "/api/jobs",
        {"definition": "burst", "params": {"colour": 1}},
        422,
        "unknown param 'colour'",
        "params.colour",
    ),
    ("POST", "/api/jobs", {"definition": "burst", "params": [1]}, 422, "params must be", "params"),
    (
        "POST",
        "/api/jobs",
        {"definition": "burst", "extra": 1},
        400,
        "unknown field 'extra'",
        "extra",
    ),
    ("GET", f"/api/jobs/{MISSING}", None, 404, f"no job with id '{MISSING}'", None),
    ("GET", "/api/jobs/not-a-uuid", None, 404, "no job with id 'not-a-uuid'", None),
    ("POST", f"/api/jobs/{MISSING}/cancel", None, 404, "no job with id", None),
    ("POST", "/api/jobs/xyz/retry", None, 404, "no job with id", None),
    ("GET", f"/api/steps/{MISSING}", None, 404, "no step with id", None),
    ("GET", f"/api/steps/{MISSING}/logs", None, 404, "no step with id", None),
    ("GET", "/api/logs", {"limit": "0"}, 400, "limit must be between 1 and 5000", "limit"),
    ("GET", "/api/logs", {"limit": "100000"}, 400, "limit must be between", "limit"),
    ("GET", "/api/logs", {"limit": "many"}, 400, "limit must be an integer", "limit"),
    ("GET", "/api/logs", {"cursor": "9" * 30}, 400, "cursor must be between 0 and", "cursor"),
    ("GET", "/api/jobs", {"before": "9" * 30}, 400, "before must be between 1 and", "before"),
    ("GET", "/api/logs", {"level": "loud"}, 400, "unknown level 'loud'", "level"),
    ("GET", "/api/logs", {"since": "yesterday"}, 400, "since must be an ISO 8601", "since"),
    ("GET", "/api/logs", {"order": "sideways"}, 400, "order must be one of", "order"),
    ("GET", "/api/jobs", {"status": "sleeping"}, 400, "status must be one of", "status"),
    ("GET", "/api/no/such/route", None, 404, "Not Found", None),
]


@pytest.fixture(scope="module")
def untouched_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for all the bad requests: none of them may create anything."""
    live = start_server(Path(tmp_path_factory.mktemp("bad-input")) / "data")
    try:
        yield live
    finally:
        live.stop()


@pytest.mark.parametrize(("method", "path", "payload", "status", "words", "field"), CASES)
def test_bad_request_is_named_and_writes_nothing(
    untouched_server: LiveServer,
    method: str,
    path: str,
    payload: object,
    status: int,
    words: str,
    field: str | None,
) -> None:
    server = untouched_server
    before = server.runtime.store.recorder.max_notification_id()
    if method == "POST" and isinstance(payload, bytes):
        r = server.client.post(path, content=payload, headers={"content-type": "application/json"})
    elif method == "POST":
        r = server.client.post(path, json=payload)
    else:
        r = server.client.get(path, params=payload)  # type: ignore[arg-type]
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert words in error["message"], error
    assert error.get("field") == field
    assert server.runtime.store.recorder.max_notification_id() == before
    assert server.client.get("/api/jobs").json()["jobs"] == []


def test_level_filter_on_a_step_rejects_unknown_levels(server: LiveServer) -> None:
    job = server.wait_job(server.submit("burst", lines=10)["id"])
    step_id = job["steps"][0]["id"]
    r = server.client.get(f"/api/steps/{step_id}/logs", params={"level": "verbose"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "level"
    r = server.client.get(f"/api/steps/{step_id}/logs", params={"after_seq": "-1"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "after_seq"


def test_cancel_of_a_finished_job_is_a_conflict(server: LiveServer) -> None:
    job = server.wait_job(server.submit("burst", lines=1)["id"])
    r = server.client.post(f"/api/jobs/{job['id']}/cancel")
    assert r.status_code == 409
    assert "already succeeded" in r.json()["error"]["message"]
    assert server.job(job["id"])["status"] == "succeeded"
