"""Step code runs in worker processes: a step that crashes its interpreter,
exits, holds the GIL, blocks or overruns cannot hurt the server or other
jobs. Run on SQLite files and on the real PostgreSQL."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    LiveServer,
    ServerProcess,
    free_port,
    get_json,
    serving,
    start_server,
    step_lines,
    wait_until,
)


@pytest.fixture
def live(tmp_path: Path, any_store: str | None) -> Iterator[LiveServer]:
    with serving(tmp_path / "data", store=any_store, cancel_grace=1.0) as server:
        yield server


def _running(server: LiveServer, job_id: str) -> dict:
    return wait_until(
        lambda: (j := server.job(job_id))["steps"][0]["status"] == "running" and j,
        what="the step to run",
    )


def test_a_crashing_step_fails_alone_and_keeps_its_lines(live: LiveServer) -> None:
    job = live.submit("misbehave", how="abort", url=live.base_url)
    job = live.wait_job(job["id"], ("failed",), timeout=30)
    step = job["steps"][0]
    assert step["status"] == "failed"
    assert step["error"] == "worker process killed by SIGABRT"
    # attempt 2 (max_attempts=2) crashed the same way
    assert [(s["attempt"], s["status"]) for s in job["steps"][:2]] == [(1, "failed"), (2, "failed")]
    assert [x["seq"] for x in step_lines(live.base_url, step["id"])] == list(range(1, 101))
    live.wait_job(live.submit("burst", lines=10)["id"])  # the pool replaced the process


def test_a_dead_worker_is_retried_when_attempts_remain(live: LiveServer) -> None:
    job = live.wait_job(live.submit("misbehave", how="exit-first-attempt")["id"], timeout=30)
    first, second, after = job["steps"]
    assert (first["attempt"], first["status"]) == (1, "failed")
    assert first["error"] == "worker process exited with code 3"
    assert (second["attempt"], second["status"]) == (2, "succeeded")
    assert second["counts"]["total"] == 100 and after["status"] == "succeeded"


def test_cancel_stops_a_step_that_never_checks(live: LiveServer) -> None:
    for how in ("sleep", "hold-the-gil", "chatter"):
        job = live.submit("misbehave", how=how)
        _running(live, job["id"])
        # the server answers while the step holds its own interpreter's GIL
        assert httpx.get(f"{live.base_url}/api/jobs", timeout=2).status_code == 200
        assert live.client.post(f"/api/jobs/{job['id']}/cancel").status_code == 202
        # the grace (1 s), then the process is stopped: within grace + 2 s
        done = live.wait_job(job["id"], ("cancelled",), timeout=3)
        step = done["steps"][0]
        assert step["status"] == "cancelled", how
        assert "its worker was stopped" in step["error"], step["error"]
    live.wait_job(live.submit("burst", lines=10)["id"])


def test_a_step_that_overruns_its_timeout_fails(live: LiveServer) -> None:
    job = live.wait_job(live.submit("timed", how="sleep")["id"], ("failed",), timeout=15)
    step = job["steps"][0]
    assert step["status"] == "failed"
    assert step["error"].startswith("timed out after 2 s"), step["error"]
    assert "timed out after 2 s" in job["error"]


def test_a_server_stop_records_running_steps_as_interrupted(
    tmp_path: Path, any_store: str | None
) -> None:
    data = tmp_path / "data"
    server = start_server(data, store=any_store, cancel_grace=1.0)
    job = server.submit("misbehave", how="sleep")
    _running(server, job["id"])
    server.stop()
    server = start_server(data, store=any_store)
    try:
        done = server.wait_job(job["id"], ("cancelled",), timeout=10)
        assert done["steps"][0]["error"].startswith("interrupted: the server stopped")
        assert done["steps"][0]["counts"]["total"] == 100
    finally:
        server.stop()


def test_ctrl_c_gives_running_steps_the_grace_then_records_them_interrupted(
    tmp_path: Path, any_store: str | None
) -> None:
    """Ctrl-C in a terminal signals the server and its worker processes
    alike: the workers wait for the server, which stops the step itself."""
    data = tmp_path / "data"
    extra = ("--cancel-grace", "1", *(("--store", any_store) if any_store else ()))
    proc = ServerProcess(data, free_port(), extra_args=extra).start()
    try:
        job_id = _submit(proc.base_url, "misbehave", how="sleep")
        # its 100 lines are stored: it runs in its worker, now in time.sleep
        wait_until(
            lambda: (
                get_json(proc.base_url, f"/api/jobs/{job_id}")["steps"][0]["counts"]["total"] == 100
            ),
            what="the step to log its lines",
        )
        assert proc.proc is not None
        os.killpg(proc.proc.pid, signal.SIGINT)
        proc.proc.wait(timeout=30)
        proc.start()
        job = wait_until(
            lambda: (
                (j := get_json(proc.base_url, f"/api/jobs/{job_id}"))["status"] != "running" and j
            ),
            30,
            what="the job to end",
        )
    finally:
        proc.stop()
    step = job["steps"][0]
    assert (job["status"], step["status"]) == ("cancelled", "cancelled"), [
        (x["attempt"], x["status"], x["error"]) for x in job["steps"]
    ]
    assert step["error"].startswith("interrupted: the server stopped"), step["error"]
    assert step["counts"]["total"] == 100


def _submit(base_url: str, definition: str, **params: object) -> str:
    r = httpx.post(
        f"{base_url}/api/jobs", json={"definition": definition, "params": params}, timeout=30
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])
