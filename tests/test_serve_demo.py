"""``steptrail serve --demo``: the demo job is there to watch once the server
answers, and the operator is told its id."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.conftest import ServerProcess, free_port, wait_until


def test_serve_demo_submits_one_demo_job_per_start(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path / "data", free_port(), ("--demo",)).start()
    try:
        jobs = wait_until(
            lambda: httpx.get(f"{proc.base_url}/api/jobs", timeout=10).json()["jobs"],
            10,
            what="the demo job to be listed",
        )
        assert [job["definition"] for job in jobs] == ["demo"]
        said = wait_until(
            lambda: re.search(r"demo job (\S+) submitted", proc.output()), 10, what="the job's id"
        )
        assert said[1] == jobs[0]["id"]
    finally:
        proc.stop()
