"""Issue 2, show 3: SIGKILL the server mid-run and start it again. No line
appears twice, nothing flushed is lost, the read model equals a rebuild from
the event store, and the interrupted step is abandoned, not running forever."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.conftest import (
    JSON_HEADERS,
    ServerProcess,
    assert_live_model_is_a_rebuild,
    free_port,
    get_json,
    step_lines,
    wait_until,
)


def _seqs_of(base_url: str, step_id: str) -> list[int]:
    return [x["seq"] for x in step_lines(base_url, step_id)]


def test_sigkill_mid_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = ServerProcess(data, free_port()).start()
    try:
        r = httpx.post(
            f"{proc.base_url}/api/jobs",
            timeout=10,
            json={"definition": "drip", "params": {"lines": 5000, "interval": 0.002}},
        )
        job_id = r.json()["id"]

        def step_with_lines() -> dict[str, Any] | None:
            steps = get_json(proc.base_url, f"/api/jobs/{job_id}")["steps"]
            return steps[0] if steps[0]["id"] and steps[0]["counts"]["total"] >= 200 else None

        step = wait_until(step_with_lines, 30, what="step 1 to log 200 lines")
        # one page: paging on until a page comes back empty would follow the
        # running step to its end
        page = get_json(proc.base_url, f"/api/steps/{step['id']}/logs", limit=5000)
        seen_before_kill = [x["seq"] for x in page["lines"]]
        proc.kill()

        proc.start()
        job = wait_until(
            lambda: (
                (j := get_json(proc.base_url, f"/api/jobs/{job_id}"))["status"] == "failed" and j
            ),
            30,
            what="the job to be failed after restart",
        )
        (first, *rest) = job["steps"]
        assert first["status"] == "abandoned"
        assert "abandoned" in job["error"]
        assert [s["status"] for s in rest] == ["skipped"]

        seqs = _seqs_of(proc.base_url, first["id"])
        assert seqs == list(range(1, len(seqs) + 1)), "gap or duplicate in seq"
        assert len(seqs) == first["counts"]["total"] == first["last_seq"]
        assert seqs[: len(seen_before_kill)] == seen_before_kill, "a flushed line was lost"

        r = httpx.post(f"{proc.base_url}/api/jobs/{job_id}/retry", timeout=10, headers=JSON_HEADERS)
        assert r.status_code == 202, r.text
        retried = wait_until(
            lambda: (
                (j := get_json(proc.base_url, f"/api/jobs/{job_id}"))["status"] == "running"
                and len(j["step_job_ids"]) == 2
                and j
            ),
            30,
            what="attempt 2 to start",
        )
        assert [(s["index"], s["attempt"]) for s in retried["steps"]][:2] == [(0, 1), (0, 2)]
        httpx.post(f"{proc.base_url}/api/jobs/{job_id}/cancel", timeout=10, headers=JSON_HEADERS)
        wait_until(
            lambda: get_json(proc.base_url, f"/api/jobs/{job_id}")["status"] == "cancelled",
            30,
            what="cancel",
        )
        assert _seqs_of(proc.base_url, first["id"]) == seqs, "attempt 1's lines changed"
    finally:
        proc.stop()

    assert_live_model_is_a_rebuild(None, data, tmp_path)
