"""``GET /api/jobs/{id}/replay?position=P`` answers from indexes (line marks and
the few non-line events) exactly what folding every event up to P into a read
model gives, and what the live read model said when it was at P; on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from steptrail.projections.history import select_job_events
from steptrail.projections.notifier import PositionNotifier
from steptrail.projections.queries import Queries
from steptrail.projections.readmodel import ReadModel
from steptrail.projections.rebuild import ScratchDatabase
from tests.conftest import LiveServer, run_cli, wait_until

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def server(any_server: LiveServer) -> LiveServer:
    return any_server


def _folded(server: LiveServer, job_id: str, path: Path) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The oracle: the job's events (lines included) applied one by one to a
    fresh read model, with the live query's answer after each."""
    events, _ = select_job_events(server.runtime.store, job_id, 0, 100_000)
    db = ScratchDatabase(path)  # no fsync per event
    try:
        model, queries = ReadModel(db), Queries(db, PositionNotifier())
        for i, (position, event) in enumerate(events):
            model.apply(events[i - 1][0] if i else 0, [(position, event)])
            job = queries.get_job(job_id)
            assert job is not None and job["position"] == position
            yield event, job
    finally:
        db.close()


def _replay(server: LiveServer, job_id: str, position: int) -> dict[str, Any]:
    r = server.client.get(f"/api/jobs/{job_id}/replay", params={"position": position})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_replay_equals_the_fold_at_every_position(server: LiveServer, tmp_path: Path) -> None:
    job = server.submit("drip", lines=60, interval=0.01)
    seen: dict[int, dict[str, Any]] = {}  # what the live model answered, by its position

    def finished() -> bool:
        now = server.job(job["id"])
        seen[now["position"]] = now
        return now["status"] == "succeeded"

    wait_until(finished, 60, interval=0.01, what="the job to finish")
    assert len(seen) >= 5, "answers taken during the run"
    for position, live in seen.items():
        assert _replay(server, job["id"], position) == live, f"live answer at {position}"

    kinds = set()
    for event, expected in _folded(server, job["id"], tmp_path / "oracle.sqlite"):
        got = _replay(server, job["id"], expected["position"])
        assert got == expected, f"after {type(event).__qualname__} at {expected['position']}"
        kinds.add(type(event).__name__)
    assert {"StepLogged", "StepProgress", "StepCompleted", "ManagerCompleted"} <= kinds


def test_verify_checks_the_line_marks_and_rebuild_repairs_them(server: LiveServer) -> None:
    """Replays read counts from line_marks: verify compares them with a rebuild
    and rebuild (which swaps them in with the other tables) puts them right."""
    job = server.wait_job(server.submit("burst", lines=2500)["id"])
    step = job["steps"][0]
    location = server.runtime.location
    store = ["--store", location.postgres_url] if location.postgres_url else []
    data = ["--data-dir", str(location.data_dir)]
    assert run_cli("verify", *data, *store).returncode == 0
    position = job["position"]
    with server.runtime.db.write() as cur:
        cur.execute(
            "SELECT position FROM line_marks WHERE step_job_id = ? ORDER BY position DESC LIMIT 1",
            (step["id"],),
        )
        mark = cur.fetchone()["position"]
        cur.execute(
            "UPDATE line_marks SET n_error = n_error + 1 WHERE step_job_id = ? AND position = ?",
            (step["id"], mark),
        )
    assert _replay(server, job["id"], position)["steps"][0]["counts"] != step["counts"]
    broken = run_cli("verify", *data, *store)
    assert broken.returncode == 1
    errors = step["counts"]["error"]
    assert broken.stdout.splitlines() == [
        f"line mark {step['id']} at position {mark} (burst attempt 1): differs in"
        f" n_error (live {errors + 1}, rebuilt {errors})"
    ]
    assert run_cli("rebuild", *data, *store).returncode == 0
    assert run_cli("verify", *data, *store).returncode == 0
    assert _replay(server, job["id"], position)["steps"] == server.job(job["id"])["steps"]
