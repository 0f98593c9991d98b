"""Issue 2, shows 1 and 2: every line a step logs is in that step, counted,
in seq order, with full context, and visible while the step runs."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import LiveServer, step_lines, wait_until

N = 10_000


def test_ten_thousand_lines_are_all_in_their_step(server: LiveServer) -> None:
    job = server.submit("burst", lines=N)
    job = server.wait_job(job["id"])
    (step,) = job["steps"]
    assert job["step_job_ids"] == [step["id"]]

    assert step["counts"]["total"] == N
    by_level = {k: v for k, v in step["counts"].items() if k != "total"}
    assert sum(by_level.values()) == N
    assert by_level["error"] == N // 5 and by_level["warning"] == N // 5

    lines = step_lines(server.base_url, step["id"], page=1000)
    assert [x["seq"] for x in lines] == list(range(1, N + 1))
    assert [x["message"] for x in lines] == [f"line {i}" for i in range(1, N + 1)]
    assert lines[1]["fields"] == {"i": 2} and lines[0]["logger"] == "tests.burst"

    prefix = f"[{job['id'][:8]}/burst#1]"

    def console_lines() -> list[str]:
        return [ln for ln in server.console.getvalue().splitlines() if prefix in ln]

    # the console prints from a thread of its own, after the lines are stored
    console = wait_until(lambda: len(console_lines()) >= N and console_lines(), what="console")
    assert len(console) == N
    assert [int(re.search(r"\]\s+(\d+) ", ln).group(1)) for ln in console] == list(range(1, N + 1))

    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"step_job_id": step["id"], "limit": 5000}
        if cursor:
            params["cursor"] = cursor
        page = server.client.get("/api/logs", params=params).json()
        rows += page["lines"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(rows) == N
    for row in rows:
        assert all(
            row[k] is not None
            for k in (
                "job_id",
                "step_job_id",
                "step_name",
                "step_index",
                "attempt",
                "seq",
                "level",
                "message",
                "timestamp",
                "logger",
            )
        ), row
    assert {(r["job_id"], r["step_name"], r["step_index"], r["attempt"]) for r in rows} == {
        (job["id"], "burst", 0, 1)
    }


def test_step_id_and_count_are_live_while_the_step_runs(server: LiveServer) -> None:
    job = server.submit("drip", lines=400, interval=0.02)

    def first_step_counting() -> dict[str, Any] | None:
        j = server.job(job["id"])
        return j if j["step_job_ids"] and j["steps"][0]["counts"]["total"] > 0 else None

    running = wait_until(first_step_counting, what="step 1 to have lines")
    assert running["status"] == "running" and running["steps"][0]["status"] == "running"
    first = running["steps"][0]["counts"]["total"]
    later = wait_until(
        lambda: server.job(job["id"])["steps"][0]["counts"]["total"] > first,
        what="the count to grow",
    )
    assert later
    assert server.job(job["id"])["steps"][0]["status"] == "running"
    server.client.post(f"/api/jobs/{job['id']}/cancel")
    server.wait_job(job["id"], ("cancelled",))


def test_min_level_and_text_filters_apply_to_step_and_global_queries(server: LiveServer) -> None:
    job = server.wait_job(server.submit("burst", lines=100)["id"])
    step_id = job["steps"][0]["id"]
    page = server.client.get(f"/api/steps/{step_id}/logs", params={"level": "warning"}).json()
    assert {x["level"] for x in page["lines"]} == {"WARNING", "ERROR"}
    assert len(page["lines"]) == 40
    page = server.client.get("/api/logs", params={"job_id": job["id"], "q": "LINE 10"}).json()
    assert [x["message"] for x in page["lines"]] == ["line 10", "line 100"]


def test_any_fields_a_step_logs_are_stored_and_read_back(server: LiveServer) -> None:
    job = server.wait_job(server.submit("tricky-fields")["id"])
    lines = step_lines(server.base_url, job["steps"][0]["id"], page=1000)
    assert lines[0]["fields"] == {"_type_": "uuid_hex", "_data_": "not-a-uuid"}
    assert lines[1]["fields"] == {"thing": "ValueError('x')"}
    assert lines[2]["message"] == "file caf\\udce9.txt"
    assert lines[2]["fields"] == {"name": "caf\\udce9.txt"}
    assert lines[3]["fields"] == {"value": str(2**70)}
    assert lines[4]["message"] == "nul \\x00 byte"
    events = server.client.get(f"/api/jobs/{job['id']}/events").json()["events"]
    logged = [e for e in events if e["type"] == "StepLogged"]
    assert logged[0]["payload"]["lines"][0]["fields"]["_data_"] == "not-a-uuid"
    state = server.client.get(f"/api/steps/{job['steps'][0]['id']}/state").json()
    assert state["state"]["last_seq"] == 5
