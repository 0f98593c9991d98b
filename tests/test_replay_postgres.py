"""Event replay on the PostgreSQL store and read model (the scale-out setup):
history, verify and rebuild behave as they do on SQLite files."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from steptrail.domain.store import parse_store
from tests.conftest import LiveServer, run_cli, serving

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_server(tmp_path: Path, pg_store: str) -> Iterator[LiveServer]:
    with serving(tmp_path / "data", store=pg_store) as server:
        yield server


def _cli(store: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--store", store, timeout=90)


def test_history_verify_and_rebuild_on_postgresql(pg_server: LiveServer, pg_store: str) -> None:
    job = pg_server.wait_job(pg_server.submit("burst", lines=2000)["id"])
    step = job["steps"][0]

    page = pg_server.client.get(f"/api/jobs/{job['id']}/events", params={"limit": 1000}).json()
    positions = [e["position"] for e in page["events"]]
    assert positions == sorted(set(positions)) and not page["has_more"]
    logged = [x for e in page["events"] if e["type"] == "StepLogged" for x in e["payload"]["lines"]]
    assert [x["seq"] for x in logged] == list(range(1, 2001))

    assert _cli(pg_store, "verify").returncode == 0

    location = parse_store(pg_store, ".")
    schema = location.postgres_params()["schema"]
    with psycopg.connect(location.postgres_conninfo(), autocommit=True) as conn:
        conn.execute(
            f'DELETE FROM "{schema}".lines WHERE step_job_id = %s AND seq = 1999',  # type: ignore[arg-type]
            (step["id"],),
        )
    broken = _cli(pg_store, "verify")
    assert broken.returncode == 1
    assert broken.stdout.splitlines() == [
        f"step {step['id']} (burst attempt 1): line missing from the live read model: seq 1999"
    ]

    rebuilt = _cli(pg_store, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert _cli(pg_store, "verify").returncode == 0
    lines = pg_server.client.get(f"/api/steps/{step['id']}/logs", params={"limit": 5000}).json()
    assert [x["seq"] for x in lines["lines"]] == list(range(1, 2001))

    # the model goes on after the swap: a new job is projected as usual
    later = pg_server.wait_job(pg_server.submit("burst", lines=10)["id"])
    assert later["steps"][0]["counts"]["total"] == 10
    assert _cli(pg_store, "verify").returncode == 0
