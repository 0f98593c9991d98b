"""Issue 5, show 4: with a token set, the API and the stream answer 401 without
it and 200 with it; the page itself and /healthz stay reachable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, run_cli, serving

TOKEN = "s3cret-token"


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[LiveServer]:
    with serving(tmp_path / "data", token=TOKEN) as live:
        yield live


@pytest.mark.parametrize("path", ["/api/jobs", "/api/logs", "/api/stream", "/openapi.json"])
def test_no_token_no_entry(guarded: LiveServer, path: str) -> None:
    r = httpx.get(f"{guarded.base_url}{path}", timeout=5)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"
    wrong = httpx.get(
        f"{guarded.base_url}{path}", timeout=5, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401


def test_the_token_opens_api_and_stream(guarded: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.post(
        f"{guarded.base_url}/api/jobs",
        headers=headers,
        timeout=10,
        json={"definition": "burst", "params": {"lines": 3}},
    )
    assert r.status_code == 201
    assert httpx.get(f"{guarded.base_url}/api/jobs", headers=headers, timeout=5).status_code == 200
    with httpx.stream(
        "GET",
        f"{guarded.base_url}/api/stream",
        params={"token": TOKEN},
        timeout=httpx.Timeout(5, read=5),
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
    assert httpx.get(f"{guarded.base_url}/", timeout=5).status_code == 200
    assert httpx.get(f"{guarded.base_url}/healthz", timeout=5).status_code == 200


def test_serving_beyond_loopback_without_a_token_is_refused(tmp_path: Path) -> None:
    out = run_cli("serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path / "data"))
    assert out.returncode == 2
    assert "needs --token" in out.stderr
