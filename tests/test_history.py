"""Issue 4, shows 1 and 2: a job's event history lists every event once in store
order, and an aggregate's state at version N is the fold of its first N events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from steptrail.domain.aggregates import LEVELS
from tests.conftest import LiveServer, run_cli


def _history(server: LiveServer, job_id: str, limit: int, lines: bool = True) -> list[dict]:
    """The whole history, page by page."""
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = server.client.get(
            f"/api/jobs/{job_id}/events",
            params={"after": after, "limit": limit, "lines": str(lines).lower()},
        ).json()
        events += page["events"]
        after = page["next_after"]
        if not page["has_more"]:
            return events


def test_events_of_a_finished_job_list_every_event_once_in_store_order(
    server: LiveServer,
) -> None:
    job = server.wait_job(server.submit("drip", lines=300, interval=0)["id"])
    history = _history(server, job["id"], limit=7)

    positions = [e["position"] for e in history]
    assert positions == sorted(set(positions)), "store order, each event once"
    assert history == _history(server, job["id"], limit=1000), "paging changes nothing"

    # Exactly the job's events: compare with the raw store, read independently.
    ids = {job["id"], *job["step_job_ids"]}
    store = server.runtime.store
    stored = store.recorder.select_notifications(0, 100_000)
    assert positions == [n.id for n in stored if str(n.originator_id) in ids]

    # Every aggregate's versions run 1..n: nothing missing in between.
    for originator in ids:
        versions = [e["version"] for e in history if e["originator_id"] == originator]
        assert versions == list(range(1, len(versions) + 1))
    assert history[0]["type"] == "ManagerSubmitted" and history[-1]["type"] == "ManagerCompleted"

    for step in job["steps"]:
        logged = [
            e for e in history if e["originator_id"] == step["id"] and e["type"] == "StepLogged"
        ]
        lines = [line for e in logged for line in e["payload"]["lines"]]
        assert len(lines) == step["counts"]["total"] > 0
        assert [x["seq"] for x in lines] == list(range(1, len(lines) + 1))
    drip_lines = [x for e in history if e["type"] == "StepLogged" for x in e["payload"]["lines"]]
    assert drip_lines[0]["message"] == "drip 1" and drip_lines[0]["level"] == "INFO"


def test_cli_events_prints_the_same_history(server: LiveServer) -> None:
    job = server.wait_job(server.submit("burst", lines=2500)["id"])
    data_dir = str(server.runtime.location.data_dir)
    history = _history(server, job["id"], limit=100)

    as_json = run_cli("events", job["id"], "--data-dir", data_dir, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert [orjson.loads(x) for x in as_json.stdout.splitlines()] == history

    readable = run_cli("events", job["id"], "--data-dir", data_dir, "--lines")
    assert readable.returncode == 0, readable.stderr
    out = readable.stdout.splitlines()
    logged_rows = [x for x in out if " StepLogged " in x]
    line_rows = [x for x in out if x.split()[:1] == ["seq"]]
    assert len(logged_rows) == sum(e["type"] == "StepLogged" for e in history)
    assert len(line_rows) == job["steps"][0]["counts"]["total"] == 2500
    assert line_rows[0].split()[:3] == ["seq", "1", "INFO"]
    assert len(out) == len(history) + 2500

    missing = run_cli("events", "0" * 32, "--data-dir", data_dir)
    assert missing.returncode == 1 and "no job with id" in missing.stderr


def _fold_step(events: list[dict[str, Any]]) -> dict[str, Any]:
    """An independent fold of a StepJob's events (the test's oracle)."""
    state: dict[str, Any] = {}
    for e in events:
        p = e["payload"]
        if e["type"] == "StepStarted":
            state = {
                "status": "running",
                "last_seq": 0,
                "counts": dict.fromkeys(LEVELS, 0),
                "progress": {"current": 0, "total": None, "message": ""},
                "error": None,
            }
        elif e["type"] == "StepLogged":
            assert p["first_seq"] == state["last_seq"] + 1
            state["last_seq"] = p["last_seq"]
            for level, n in p["counts"].items():
                state["counts"][level] += n
        elif e["type"] == "StepProgress":
            state["progress"] = {k: p[k] for k in ("current", "total", "message")}
        elif e["type"] == "StepCompleted":
            state["status"], state["error"] = p["status"], p["error"]
    return state


def _fold_manager(events: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for e in events:
        p = e["payload"]
        if e["type"] == "ManagerSubmitted":
            n = len(p["step_names"])
            state = {"status": "queued", "step_job_ids": [], "step_status": ["pending"] * n}
        elif e["type"] == "ManagerStarted":
            state["status"] = "running"
        elif e["type"] == "StepStarted":
            state["step_job_ids"].append(p["step_job_id"])
            state["step_status"][p["step_index"]] = "running"
        elif e["type"] == "StepFinished":
            state["step_status"][p["step_index"]] = p["status"]
        elif e["type"] == "ManagerCompleted":
            state["status"] = p["status"]
    return state


def test_state_at_version_n_is_the_fold_of_the_first_n_events(server: LiveServer) -> None:
    job = server.wait_job(server.submit("burst", lines=50_000)["id"])
    step_id = job["step_job_ids"][0]
    history = _history(server, job["id"], limit=1000, lines=False)
    step_events = [e for e in history if e["originator_id"] == step_id]
    n = len(step_events)
    assert n > 101, "enough events to cross the snapshot taken every 100"

    for version in sorted({1, 2, 3, n // 2, 99, 100, 101, n - 1, n}):
        body = server.client.get(f"/api/steps/{step_id}/state", params={"version": version})
        assert body.status_code == 200, body.text
        got = body.json()
        assert got["version"] == version and got["latest_version"] == n
        expected = _fold_step(step_events[:version])
        assert {k: got["state"][k] for k in expected} == expected, f"version {version}"
    final = server.client.get(f"/api/steps/{step_id}/state").json()
    assert final["version"] == n and final["state"]["last_seq"] == 50_000
    assert final["state"]["counts"] == {
        level.upper(): count
        for level, count in job["steps"][0]["counts"].items()
        if level != "total"
    }

    manager_events = [e for e in history if e["originator_id"] == job["id"]]
    for version in range(1, len(manager_events) + 1):
        got = server.client.get(f"/api/jobs/{job['id']}/state", params={"version": version}).json()
        expected = _fold_manager(manager_events[:version])
        assert {k: got["state"][k] for k in expected} == expected, f"version {version}"


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("/api/steps/{step}/state", {"version": "0"}, 400, "version"),
        ("/api/steps/{step}/state", {"version": "9999"}, 400, "version"),
        ("/api/steps/{step}/state", {"version": "two"}, 400, "version"),
        ("/api/jobs/{job}/state", {"version": "-1"}, 400, "version"),
        ("/api/jobs/{step}/state", {}, 404, None),
        ("/api/steps/{job}/state", {}, 404, None),
        ("/api/steps/not-a-uuid/state", {}, 404, None),
        ("/api/jobs/{job}/events", {"after": "-1"}, 400, "after"),
        ("/api/jobs/{job}/events", {"limit": "0"}, 400, "limit"),
        ("/api/jobs/{job}/events", {"limit": "100000"}, 400, "limit"),
        ("/api/jobs/{job}/events", {"lines": "maybe"}, 400, "lines"),
        ("/api/jobs/{step}/events", {}, 404, None),
        ("/api/jobs/{job}/replay", {}, 400, "position"),
        ("/api/jobs/{job}/replay", {"position": "x"}, 400, "position"),
        ("/api/jobs/{job}/replay", {"position": "0"}, 400, "position"),
    ],
)
def test_bad_history_requests_name_the_problem(
    server: LiveServer, path: str, params: dict[str, str], status: int, field: str | None
) -> None:
    job = server.wait_job(server.submit("burst", lines=10)["id"])
    url = path.format(job=job["id"], step=job["step_job_ids"][0])
    r = server.client.get(url, params=params)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["message"]
    assert error.get("field") == field
