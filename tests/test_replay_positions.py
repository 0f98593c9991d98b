"""``GET /api/jobs/{id}/replay?position=P`` answers from indexes (line marks and
the few non-line events) exactly what folding every event up to P into a read
model gives, and what the live read model said when it was at P; on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from projections.database import SQLiteDatabase
from projections.history import select_job_events
from projections.notifier import PositionNotifier
from projections.queries import Queries
from projections.readmodel import ReadModel
from tests.conftest import LiveServer, start_server, wait_until

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    store = request.getfixturevalue("pg_store") if request.param == "postgres" else None
    live = start_server(tmp_path / "data", store=store)
    try:
        yield live
    finally:
        live.stop()


def _folded(server: LiveServer, job_id: str, position: int, path: Path) -> dict[str, Any]:
    """The oracle: every event of the job up to ``position`` (lines included)
    applied to a fresh read model, then the live query."""
    events, _ = select_job_events(server.runtime.store, job_id, 0, 100_000, position)
    db = SQLiteDatabase(path)
    try:
        ReadModel(db).apply(0, events)
        job = Queries(db, PositionNotifier()).get_job(job_id)
    finally:
        db.close()
    assert job is not None
    return {**job, "position": position}


def _replay(server: LiveServer, job_id: str, position: int) -> dict[str, Any]:
    r = server.client.get(f"/api/jobs/{job_id}/replay", params={"position": position})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_replay_equals_the_fold_at_every_position(server: LiveServer, tmp_path: Path) -> None:
    job = server.submit("drip", lines=200, interval=0.003)
    seen: dict[int, dict[str, Any]] = {}  # what the live model answered, by its position

    def finished() -> bool:
        now = server.job(job["id"])
        seen[now["position"]] = now
        return now["status"] == "succeeded"

    wait_until(finished, 60, interval=0.01, what="the job to finish")
    assert len(seen) >= 5, "answers taken during the run"
    for position, live in seen.items():
        assert _replay(server, job["id"], position) == live, f"live answer at {position}"

    events = server.client.get(
        f"/api/jobs/{job['id']}/events", params={"limit": 1000, "lines": "false"}
    ).json()["events"]
    kinds = {e["type"] for e in events}
    assert {"StepLogged", "StepProgress", "StepCompleted", "ManagerCompleted"} <= kinds
    for i, e in enumerate(events):
        path = tmp_path / f"oracle-{i}.sqlite"
        expected = _folded(server, job["id"], e["position"], path)
        assert _replay(server, job["id"], e["position"]) == expected, f"after {e['type']}"
