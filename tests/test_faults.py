"""Faults around the steps: a console that is closed or never read, a server
killed at any moment, a disk that fills up. None of them may decide a step's
outcome, run a finished step again, or lose a stored line."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from steptrail.domain.commands import get_step
from tests.conftest import (
    ServerProcess,
    free_port,
    get_json,
    run_cli,
    start_server,
    step_lines,
    store_args,
    wait_until,
)

FINAL = ("succeeded", "failed", "cancelled")


def _submit(base_url: str, definition: str, **params: Any) -> str:
    r = httpx.post(
        f"{base_url}/api/jobs", json={"definition": definition, "params": params}, timeout=30
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _ended(base_url: str, job_id: str, timeout: float = 30) -> dict[str, Any]:
    return wait_until(
        lambda: (j := get_json(base_url, f"/api/jobs/{job_id}"))["status"] in FINAL and j,
        timeout,
        what=f"job {job_id} to end",
    )


@pytest.mark.parametrize("stdout", ["closed", "unread"])
def test_a_dead_or_stalled_stdout_costs_console_text_only(tmp_path: Path, stdout: str) -> None:
    """``steptrail serve | head`` (a closed pipe) and a pipe nobody reads (a
    stopped ``tee``): every job runs each step once and succeeds."""
    proc = ServerProcess(tmp_path / "data", free_port(), stdout=stdout).start()
    try:
        # 3 x 2 steps x 2,000 lines: far more than a pipe's 64 KiB buffer holds
        jobs = [_submit(proc.base_url, "burst", lines=2000) for _ in range(3)]
        jobs.append(_submit(proc.base_url, "drip", lines=50, interval=0.001))
        for job_id in jobs:
            job = _ended(proc.base_url, job_id)
            assert job["status"] == "succeeded", job["error"]
            assert [s["attempt"] for s in job["steps"]] == [1] * len(job["steps"])
            assert len(job["step_job_ids"]) == len(job["steps"])
        assert httpx.get(f"{proc.base_url}/healthz", timeout=10).status_code == 200
    finally:
        proc.stop()
        if proc.proc is not None and proc.proc.stdout is not None:
            proc.proc.stdout.close()
    assert proc.proc is not None and proc.proc.returncode is not None


def _steps_ran_once(base_url: str, job_id: str) -> dict[str, Any]:
    job = get_json(base_url, f"/api/jobs/{job_id}")
    indexes = [s["index"] for s in job["steps"] if s["id"]]
    assert len(indexes) == len(set(indexes)), f"a step ran twice: {job['steps']}"
    assert all(s["attempt"] <= 1 for s in job["steps"]), job["steps"]
    for s in job["steps"]:
        if s["status"] == "succeeded":
            assert s["counts"]["total"] == 1, s
    return job


def test_sigkill_at_random_points_never_runs_a_step_twice(
    tmp_path: Path, any_store: str | None
) -> None:
    """A 120-step job under ``max_attempts=1``, its server SIGKILLed at
    random points of its run and started again: each step is abandoned (and
    the job fails) or runs once; a step that ended is never run again."""
    rng = random.Random(8)
    data = tmp_path / "data"
    # On PostgreSQL a killed server's steps are found by their lease, not at start.
    extra = ("--store", any_store, "--lease", "2") if any_store else ()
    kills = 20 if any_store is None else 6
    proc = ServerProcess(data, free_port(), extra_args=extra).start()
    jobs: list[str] = []
    try:
        for _ in range(kills):
            job_id = next((j for j in jobs if _status(proc.base_url, j) not in FINAL), None)
            if job_id is None:
                jobs.append(job_id := _submit(proc.base_url, "many-steps"))
            done = _steps_done(proc.base_url, job_id)
            target = done + rng.randint(1, 30)
            wait_until(
                lambda j=job_id, t=target: (
                    _steps_done(proc.base_url, j) >= t or _status(proc.base_url, j) in FINAL
                ),
                60,
                what=f"{target} steps done",
            )
            proc.kill()
            proc.start()
        for job_id in jobs:
            _ended(proc.base_url, job_id, timeout=60)
            _steps_ran_once(proc.base_url, job_id)
        assert any(_status(proc.base_url, j) == "failed" for j in jobs), "no kill hit a step"
    finally:
        proc.stop()
    verify = run_cli("verify", *store_args(any_store, data), timeout=90)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _steps_done(base_url: str, job_id: str) -> int:
    job = get_json(base_url, f"/api/jobs/{job_id}")
    return sum(s["status"] == "succeeded" for s in job["steps"])


def _status(base_url: str, job_id: str) -> str:
    return str(get_json(base_url, f"/api/jobs/{job_id}")["status"])


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs: a disk that can really fill up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True
    )
    assert done.returncode == 0, f"cannot mount a tmpfs (needs root): {done.stderr!r}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_fails_the_step_with_the_cause(small_disk: Path) -> None:
    server = start_server(small_disk / "data")
    ballast = small_disk / "ballast"
    try:
        first = server.wait_job(server.submit("burst", lines=100)["id"])
        free = _free_bytes(small_disk)
        ballast.write_bytes(b"\0" * (free - 3 * 2**20))  # leave 3 MiB
        job_id = server.submit("fill-disk")["id"]
        step_id = wait_until(lambda: server.job(job_id)["step_job_ids"], what="the step")[0]
        # While the disk is full nothing can be written: the step's end is
        # stored once there is room again, and meanwhile the server says why.
        orchestrator = server.runtime.orchestrator
        assert orchestrator is not None
        wait_until(
            lambda: (
                "full" in (orchestrator.store_error or "")
                or get_step(server.runtime.store, step_id).status != "running"
            ),
            60,
            what="the refused save to be reported",
        )
        if orchestrator.store_error:
            health = httpx.get(f"{server.base_url}/healthz", timeout=10)
            assert health.status_code == 503 and "full" in health.json()["store_error"]
        ballast.unlink()
        job = server.wait_job(job_id, ("failed",), timeout=30)
        step = job["steps"][0]
        assert step["status"] == "failed"
        assert step["error"].startswith("could not store the step's events:"), step["error"]
        assert "database or disk is full" in step["error"], step["error"]
        assert "disk is full" in job["error"]
        stored = step_lines(server.base_url, step["id"])
        assert [x["seq"] for x in stored] == list(range(1, len(stored) + 1))
        assert len(stored) == step["counts"]["total"]

        assert step_lines(server.base_url, first["steps"][0]["id"])[-1]["seq"] == 100
        server.wait_job(server.submit("burst", lines=100)["id"])
        assert httpx.get(f"{server.base_url}/healthz", timeout=10).status_code == 200
    finally:
        server.stop()
        ballast.unlink(missing_ok=True)
    verify = run_cli("verify", "--data-dir", str(small_disk / "data"), timeout=90)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _free_bytes(path: Path) -> int:
    import os

    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
