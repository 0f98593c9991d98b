"""Secret params and ``ctx.mask``: the values appear nowhere outside the
step's own memory — not in the event store's bytes, the read model, the API,
the stream, downloads or the console — while the lines around them are
intact and counted. On SQLite files and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest
from httpx_sse import connect_sse

from steptrail.domain.secrets import KEY_ENV
from steptrail.domain.store import parse_store
from tests.conftest import LiveServer, start_server, step_lines
from tests.jobdefs import RUNTIME_SECRET, TOKEN

SECRETS = (TOKEN, RUNTIME_SECRET)


@pytest.fixture
def store_key(monkeypatch: pytest.MonkeyPatch, any_store: str | None) -> str | None:
    if any_store:  # on PostgreSQL every host is given the key
        monkeypatch.setenv(KEY_ENV, "ZmRzaGZqa2RzaGZrZHNqaGZrZGpzaGZrZGpzaGZramQ=")
    return any_store


def _stored_bytes(data: Path, store: str | None) -> bytes:
    """Everything the stores hold, as bytes."""
    if store is None:
        return b"".join(p.read_bytes() for p in data.iterdir() if p.is_file())
    location = parse_store(store, ".")
    schema = location.postgres_params()["schema"]
    out = []
    with psycopg.connect(location.postgres_conninfo(), autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
        for (table,) in tables:
            rows = conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()  # type: ignore[arg-type]
            out += [_raw(value) for row in rows for value in row]
    return b"\n".join(out)


def _raw(value: object) -> bytes:
    """A column's bytes as stored (event states are bytea), or its text."""
    if isinstance(value, bytes | memoryview):
        return bytes(value)
    return str(value).encode()


def _everything_served(server: LiveServer, job_id: str) -> str:
    """The API's answers, a download, the stream and the console, as text."""
    job = server.job(job_id)
    step_id = job["steps"][0]["id"]
    texts = [
        server.client.get(path).text
        for path in (
            f"/api/jobs/{job_id}",
            "/api/jobs",
            f"/api/steps/{step_id}",
            f"/api/steps/{step_id}/logs",
            f"/api/steps/{step_id}/logs/download?format=ndjson",
            f"/api/logs?job_id={job_id}",
            f"/api/jobs/{job_id}/events?limit=1000",
            f"/api/steps/{step_id}/state",
            "/api/definitions",
        )
    ]
    with (
        httpx.Client(base_url=server.base_url, timeout=httpx.Timeout(10, read=5)) as client,
        connect_sse(
            client,
            "GET",
            "/api/stream",
            params={"after": 0, "job_id": job_id, "step_job_id": step_id},
        ) as source,
    ):
        for event in source.iter_sse():
            texts.append(event.data)
            if event.event == "job" and event.json()["status"] in ("succeeded", "failed"):
                break
    return "\n".join([*texts, server.console.getvalue()])


@pytest.mark.parametrize("fail", [False, True])
def test_secrets_are_masked_everywhere_and_lines_kept(
    tmp_path: Path, store_key: str | None, fail: bool
) -> None:
    data = tmp_path / "data"
    server = start_server(data, store=store_key)
    try:
        job = server.submit("secretive", token=TOKEN, fail=fail)
        assert job["params"]["token"] == "***"
        job = server.wait_job(job["id"], ("failed",) if fail else ("succeeded",))
        step = job["steps"][0]
        lines = step_lines(server.base_url, step["id"])
        messages = [x["message"] for x in lines]
        assert messages[:5] == [
            "before",
            "token is ***",
            "plain logging: '***'",
            "runtime secret ***",
            "after",
        ]
        assert lines[1]["fields"] == {"token": "***", "header": "Bearer ***"}
        assert lines[3]["fields"] == {"nested": "***"}
        assert step["progress"]["message"] == "using ***"
        assert step["counts"]["total"] == len(lines) == (6 if fail else 5)
        if fail:
            assert step["error"] == "RuntimeError: could not log in with ***"
            assert "could not log in with ***" in step["traceback"]
        served = _everything_served(server, job["id"])
        assert "***" in served
    finally:
        server.stop()
    stored = _stored_bytes(data, store_key)
    assert b"runtime secret ***" in stored  # the search sees the stored lines
    for secret in SECRETS:
        assert secret not in served, secret
        assert secret.encode() not in stored, secret


def test_a_queued_job_gets_its_secret_after_a_restart_and_a_retry_asks_again(
    tmp_path: Path, store_key: str | None
) -> None:
    data = tmp_path / "data"
    server = start_server(data, store=store_key, workers=False)
    job_id = server.submit("secretive", token=TOKEN, fail=True)["id"]
    server.stop()
    server = start_server(data, store=store_key)
    try:
        server.wait_job(job_id, ("failed",))  # it ran with its secret, then failed as told
        refused = server.client.post(f"/api/jobs/{job_id}/retry", json={})
        assert refused.status_code in (400, 422), refused.text
        assert refused.json()["error"]["field"] == "params.token"
        retried = server.client.post(f"/api/jobs/{job_id}/retry", json={"params": {"token": TOKEN}})
        assert retried.status_code == 202, retried.text
        job = server.wait_job(job_id, ("failed",))
        assert [s["attempt"] for s in job["steps"]] == [1, 2]
        assert job["steps"][1]["error"] == "RuntimeError: could not log in with ***"
    finally:
        server.stop()
    assert TOKEN.encode() not in _stored_bytes(data, store_key)
