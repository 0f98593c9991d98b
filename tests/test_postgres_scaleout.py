"""Issue 5: scale-out on the real PostgreSQL at 127.0.0.1:5432 — several API and
worker processes on one store, crash leases, projection fail-over."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import connect_sse

from tests.conftest import (
    ServerProcess,
    assert_live_model_is_a_rebuild,
    free_port,
    get_json,
    step_lines,
    wait_until,
)

pytestmark = pytest.mark.postgres


class Cluster:
    """steptrail processes sharing one PostgreSQL schema."""

    def __init__(self, tmp_path: Path, store: str, lease: float = 15.0) -> None:
        self.tmp_path = tmp_path
        self.store = store
        self.lease = lease
        self.procs: list[ServerProcess] = []

    def api(self) -> ServerProcess:
        return self._start("serve", "--no-workers")

    def worker(self) -> ServerProcess:
        return self._start("worker", "--concurrency", "2")

    def _start(self, command: str, *args: str) -> ServerProcess:
        n = len(self.procs)
        proc = ServerProcess(
            self.tmp_path / f"p{n}",
            free_port(),
            ("--store", self.store, "--lease", str(self.lease), *args),
            command,
        ).start()
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


@pytest.fixture
def cluster(tmp_path: Path, pg_store: str) -> Iterator[Cluster]:
    c = Cluster(tmp_path, pg_store, lease=3.0)
    try:
        yield c
    finally:
        c.stop()


def _submit(proc: ServerProcess, definition: str, **params: Any) -> str:
    r = httpx.post(
        f"{proc.base_url}/api/jobs", timeout=10, json={"definition": definition, "params": params}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _seqs(proc: ServerProcess, step_id: str) -> list[int]:
    return [x["seq"] for x in step_lines(proc.base_url, step_id)]


def _final(proc: ServerProcess, job_id: str, timeout: float = 60) -> dict[str, Any]:
    return wait_until(
        lambda: (
            (j := get_json(proc.base_url, f"/api/jobs/{job_id}"))["status"]
            in ("succeeded", "failed", "cancelled")
            and j
        ),
        timeout,
        what=f"job {job_id} to end",
    )


def test_two_apis_and_two_workers_run_every_job_once(cluster: Cluster, tmp_path: Path) -> None:
    a, b = cluster.api(), cluster.api()
    cluster.worker()
    cluster.worker()
    sizes = [50 * (i + 1) for i in range(20)]
    jobs = {_submit(a if i % 2 else b, "burst", lines=n): n for i, n in enumerate(sizes)}

    # follow, on A, a step of a job that went in through B
    watched = _submit(b, "drip", lines=300, interval=0.005)
    step = wait_until(
        lambda: (s := get_json(a.base_url, f"/api/jobs/{watched}")["steps"][0])["id"] and s,
        30,
        what="the watched step to start",
    )
    received: list[int] = []
    with (
        httpx.Client(base_url=a.base_url, timeout=httpx.Timeout(30, read=15)) as client,
        connect_sse(
            client, "GET", "/api/stream", params={"step_job_id": step["id"], "after": 0}
        ) as source,
    ):
        for event in source.iter_sse():
            if event.event == "logs":
                received += [line["seq"] for line in orjson.loads(event.data)["lines"]]
            elif event.event == "step":
                state = orjson.loads(event.data)  # any job's steps: only the watched one ends this
                if (
                    state["id"] == step["id"]
                    and state["status"] != "running"
                    and len(received) >= state["last_seq"]
                ):
                    break
    assert received == list(range(1, 301))

    workers = set()
    for job_id, n in jobs.items():
        job = _final(a, job_id)
        assert job["status"] == "succeeded", job
        (s,) = job["steps"]
        assert s["attempt"] == 1 and len(job["step_job_ids"]) == 1, "a job ran twice"
        assert s["counts"]["total"] == n == len(_seqs(b, s["id"]))
        workers.add(job["worker_id"])
    assert len(workers) == 2, "both workers took jobs"
    _final(a, watched)
    cluster.stop()
    assert_live_model_is_a_rebuild(cluster.store, tmp_path, tmp_path)


def test_a_killed_worker_is_detected_and_the_step_retried(cluster: Cluster) -> None:
    api = cluster.api()
    doomed = cluster.worker()
    job_id = _submit(api, "retried-drip", lines=200, interval=0.02)
    first = wait_until(
        lambda: (
            (s := get_json(api.base_url, f"/api/jobs/{job_id}")["steps"][0])["counts"]["total"]
            >= 20
            and s
        ),
        30,
        what="attempt 1 to log",
    )
    doomed.kill()
    cluster.worker()
    job = _final(api, job_id, timeout=cluster.lease + 30)
    assert job["status"] == "succeeded"
    one, two = job["steps"]
    assert (one["attempt"], one["status"], two["attempt"], two["status"]) == (
        1,
        "abandoned",
        2,
        "succeeded",
    )
    assert one["id"] == first["id"] != two["id"]
    assert _seqs(api, one["id"]) == list(range(1, one["counts"]["total"] + 1))
    assert one["counts"]["total"] >= 20
    assert _seqs(api, two["id"]) == list(range(1, 201))
    lines = get_json(api.base_url, f"/api/steps/{one['id']}/logs", limit=1)["lines"]
    assert lines[0]["attempt"] == 1


def test_killing_the_projecting_process_hands_the_projection_over(
    cluster: Cluster, tmp_path: Path
) -> None:
    projector = cluster.api()  # first process up takes the projection lock
    standby = cluster.api()
    cluster.worker()
    job_id = _submit(standby, "drip", lines=400, interval=0.01)
    wait_until(
        lambda: (
            get_json(standby.base_url, f"/api/jobs/{job_id}")["steps"][0]["counts"]["total"] > 30
        ),
        30,
        what="lines to be projected",
    )
    projector.kill()
    job = _final(standby, job_id)
    assert job["status"] == "succeeded"
    step = job["steps"][0]
    assert _seqs(standby, step["id"]) == list(range(1, 401))
    assert step["counts"]["total"] == 400
    cluster.stop()
    assert_live_model_is_a_rebuild(cluster.store, tmp_path, tmp_path)
