"""How jobs run: order, failure, cancellation, heartbeats, concurrency, and
which step a line lands in."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer, run_cli, start_server, wait_until


def _lines(server: LiveServer, step_id: str) -> list[dict[str, Any]]:
    return server.client.get(f"/api/steps/{step_id}/logs", params={"limit": 5000}).json()["lines"]


def test_a_failed_step_fails_the_job_and_skips_the_rest(server: LiveServer) -> None:
    job = server.wait_job(server.submit("failing")["id"], ("failed",))
    assert [s["status"] for s in job["steps"]] == ["succeeded", "failed", "skipped"]
    assert job["step_status"] == ["succeeded", "failed", "skipped"]
    failed = job["steps"][1]
    assert failed["error"] == "ValueError: this step always fails"
    assert "Traceback" in failed["traceback"] and "raise ValueError" in failed["traceback"]
    assert job["error"] == "step 'fails' failed: ValueError: this step always fails"
    messages = [x["message"] for x in _lines(server, failed["id"])]
    assert messages[0] == "about to fail"
    assert messages[1].startswith("step failed: ValueError") and "Traceback" in messages[1]
    assert failed["counts"]["error"] == 1


def test_retry_runs_the_failed_step_again_as_attempt_two(server: LiveServer) -> None:
    job = server.wait_job(server.submit("failing")["id"], ("failed",))
    r = server.client.post(f"/api/jobs/{job['id']}/retry")
    assert r.status_code == 202
    job = server.wait_job(job["id"], ("failed",))
    assert [(s["name"], s["attempt"], s["status"]) for s in job["steps"]] == [
        ("done", 1, "succeeded"),
        ("fails", 1, "failed"),
        ("fails", 2, "failed"),
        ("finish", 0, "skipped"),
    ]
    assert len(job["step_job_ids"]) == 3
    first, second = job["steps"][1], job["steps"][2]
    assert first["id"] != second["id"]
    assert [x["seq"] for x in _lines(server, first["id"])] == [1, 2]
    assert [x["attempt"] for x in _lines(server, second["id"])] == [2, 2]


def test_cancel_stops_a_running_step_at_its_next_check(server: LiveServer) -> None:
    job = server.submit("drip", lines=10_000, interval=0.01)
    wait_until(lambda: server.job(job["id"])["steps"][0]["counts"]["total"] > 3, what="lines")
    r = server.client.post(f"/api/jobs/{job['id']}/cancel")
    assert r.status_code == 202 and r.json()["cancel_requested"] in (True, False)
    done = server.wait_job(job["id"], ("cancelled",))
    assert [s["status"] for s in done["steps"]] == ["cancelled", "skipped"]
    assert done["steps"][0]["counts"]["total"] < 10_000


def test_cancel_of_a_queued_job_never_runs_it(tmp_path: Path) -> None:
    live = start_server(tmp_path / "data", concurrency=1)
    try:
        blocker = live.submit("drip", lines=10_000, interval=0.01)
        queued = live.submit("burst", lines=5)
        assert live.job(queued["id"])["status"] == "queued"
        assert live.client.post(f"/api/jobs/{queued['id']}/cancel").status_code == 202
        job = live.wait_job(queued["id"], ("cancelled",))
        assert job["step_job_ids"] == [] and job["started_at"] is None
        live.client.post(f"/api/jobs/{blocker['id']}/cancel")
        live.wait_job(blocker["id"], ("cancelled",))
    finally:
        live.stop()


def test_a_silent_step_still_heartbeats(server: LiveServer) -> None:
    job = server.submit("silent", seconds=3.0)
    step = wait_until(
        lambda: server.job(job["id"])["steps"][0]["id"] and server.job(job["id"])["steps"][0],
        what="the step to start",
    )
    first_beat = step["heartbeat_at"]
    later = wait_until(
        lambda: (s := server.job(job["id"])["steps"][0])["heartbeat_at"] > first_beat and s,
        timeout=3,
        what="a heartbeat within 2 s",
    )
    assert later["status"] == "running" and later["counts"]["total"] == 0
    server.wait_job(job["id"])


def test_lines_from_async_tasks_and_context_threads_land_in_the_step(server: LiveServer) -> None:
    job = server.wait_job(server.submit("async-fanout")["id"])
    # asyncio's own debug line ("Using selector") is emitted in the step too
    lines = [x for x in _lines(server, job["steps"][0]["id"]) if x["logger"].startswith("tests.")]
    assert sorted(x["message"] for x in lines) == ["from a thread", "from the executor"] + [
        f"task {n}" for n in range(5)
    ]
    assert job["steps"][0]["counts"]["warning"] == 1


def test_concurrency_bounds_the_jobs_running_at_once(tmp_path: Path) -> None:
    live = start_server(tmp_path / "data", concurrency=2)
    try:
        ids = [live.submit("drip", lines=40, interval=0.01)["id"] for _ in range(4)]
        peak = 0
        while True:
            jobs = live.client.get("/api/jobs").json()["jobs"]
            running = sum(j["status"] == "running" for j in jobs)
            peak = max(peak, running)
            assert running <= 2
            if all(j["status"] == "succeeded" for j in jobs):
                break
            live.runtime.notifier.wait(live.runtime.notifier.position, 1.0)
        assert peak == 2
        assert len(ids) == 4
    finally:
        live.stop()


def test_index_files_hashes_and_counts_every_file(server: LiveServer, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("one\ntwo\n")
    (tree / "sub" / "b.txt").write_text("x\n" * 10)
    job = server.wait_job(server.submit("index-files", path=str(tree))["id"])
    scan, hashed = job["steps"]
    assert "found 2 files" in _lines(server, scan["id"])[0]["message"]
    lines = _lines(server, hashed["id"])
    per_file = {x["fields"]["path"]: x["fields"]["lines"] for x in lines if "path" in x["fields"]}
    assert per_file == {str(tree / "a.txt"): 2, str(tree / "sub" / "b.txt"): 10}
    assert hashed["progress"]["current"] == hashed["progress"]["total"] == 2
    assert lines[-1]["message"] == "hashed 2 files, 12 lines in all"


def test_index_files_on_a_missing_directory_fails_with_the_reason(server: LiveServer) -> None:
    job = server.wait_job(server.submit("index-files", path="/no/such/dir")["id"], ("failed",))
    assert "is not a directory" in job["steps"][0]["error"]


def test_cli_submit_prints_the_job_id(server: LiveServer) -> None:
    out = run_cli("submit", "burst", "--param", "lines=7", "--url", server.base_url)
    assert out.returncode == 0, out.stderr
    job = server.wait_job(out.stdout.strip())
    assert job["params"] == {"lines": 7} and job["steps"][0]["counts"]["total"] == 7


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("lines=seven", "'lines' must be integer"),
        ("colour=red", "unknown param 'colour'"),
    ],
)
def test_cli_submit_reports_bad_params(server: LiveServer, param: str, message: str) -> None:
    out = run_cli("submit", "burst", "--param", param, "--url", server.base_url)
    assert out.returncode == 1 and message in out.stderr


def test_a_lagging_read_model_cannot_get_a_live_step_abandoned(server: LiveServer) -> None:
    """The reaper learns of running steps from the read model, which may lag;
    the step's own aggregate has the last word on whether it is alive."""
    job = server.submit("drip", lines=60, interval=0.02)
    step = wait_until(lambda: (s := server.job(job["id"])["steps"][0])["id"] and s, what="start")
    lease_cutoff = time.time() - 15  # "no heartbeat since 15 s ago", claims a stale view
    server.runtime.commands.abandon(job["id"], step["id"], "abandoned: test", lease_cutoff)
    done = server.wait_job(job["id"])
    assert [s["status"] for s in done["steps"]] == ["succeeded", "succeeded"]
    assert done["steps"][0]["counts"]["total"] == 60


def test_any_uuid_spelling_of_a_job_id_works(server: LiveServer) -> None:
    job = server.submit("drip", lines=10_000, interval=0.01)
    r = server.client.post(f"/api/jobs/{job['id'].upper()}/cancel")
    assert r.status_code == 202 and r.json()["id"] == job["id"]
    assert server.client.get(f"/api/jobs/{job['id'].replace('-', '')}").json()["id"] == job["id"]
    server.wait_job(job["id"], ("cancelled",))
