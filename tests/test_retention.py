"""Deleting jobs and retention: a deleted job's events and rows go, a record
of it stays, the read model still equals a rebuild, numbers stay put, and
the disk space comes back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from httpx_sse import connect_sse

from steptrail.domain.deletion import delete_job
from steptrail.domain.reclaim import file_bytes
from steptrail.domain.store import JobStore, parse_store
from tests.conftest import LiveServer, run_cli, serving, store_args, wait_until

pytestmark = pytest.mark.timeout(240)


def _run_jobs(live: LiveServer, n: int, lines: int = 200) -> list[dict[str, Any]]:
    jobs = [live.submit("burst", lines=lines) for _ in range(n)]
    return [live.wait_job(job["id"]) for job in jobs]


def _numbers(live: LiveServer) -> dict[str, int]:
    return {j["id"]: j["number"] for j in live.client.get("/api/jobs").json()["jobs"]}


def _assert_verified_and_rebuilt(store: str | None, data_dir: Path) -> None:
    for command in ("verify", "rebuild", "verify"):
        done = run_cli(command, *store_args(store, data_dir))
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"


def _all_lines(live: LiveServer, cursor: str | None = None) -> list[tuple[str, int]]:
    """Every line from ``cursor`` on, in store order, a page at a time."""
    out: list[tuple[str, int]] = []
    while True:
        params: dict[str, Any] = {"limit": 150}
        if cursor is not None:
            params["cursor"] = cursor
        page = live.client.get("/api/logs", params=params).json()
        out += [(line["step_job_id"], line["seq"]) for line in page["lines"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def _assert_gone(live: LiveServer, job: dict[str, Any]) -> None:
    job_id = job["id"]
    assert live.client.get(f"/api/jobs/{job_id}").status_code == 404
    for step in job["steps"]:
        assert live.client.get(f"/api/steps/{step['id']}").status_code == 404
        assert live.client.get(f"/api/steps/{step['id']}/logs").status_code == 404
    assert live.client.get("/api/logs", params={"job_id": job_id}).json()["lines"] == []
    assert job_id not in _numbers(live)


def test_deleting_jobs_keeps_the_model_exact_and_the_numbers(
    tmp_path: Path, any_store: str | None
) -> None:
    data_dir = tmp_path / "data"
    with serving(data_dir, store=any_store) as live:
        jobs = _run_jobs(live, 4)
        numbers = _numbers(live)
        assert sorted(numbers.values()) == [1, 2, 3, 4]
        first, second = jobs[0], jobs[1]
        before = live.client.get("/api/jobs").json()["position"]

        # Through the API: the answer is the deletion record.
        r = live.client.delete(f"/api/jobs/{first['id']}")
        assert r.status_code == 200, r.text
        record = r.json()["deleted"]
        assert record["id"] == first["id"]
        assert record["number"] == 1
        assert record["definition"] == "burst"
        assert record["status"] == "deleted"
        assert record["status_when_deleted"] == "succeeded"
        assert record["deleted_by"] == "api"
        _assert_gone(live, first)
        again = live.client.delete(f"/api/jobs/{first['id']}")
        assert again.status_code == 404
        assert "was deleted" in again.json()["error"]["message"]

        # Its history is its tombstone; the list of deletions shows it.
        history = live.client.get(f"/api/jobs/{first['id']}/events").json()["events"]
        assert [(e["aggregate"], e["type"]) for e in history] == [("JobDeletion", "JobDeleted")]
        assert history[0]["payload"]["number"] == 1
        listed = live.client.get("/api/deletions").json()["deletions"]
        assert [d["id"] for d in listed] == [first["id"]]

        # The stream tells open pages: a `job` message with status "deleted".
        with (
            httpx.Client(base_url=live.base_url, timeout=httpx.Timeout(10, read=5)) as client,
            connect_sse(client, "GET", "/api/stream", params={"after": before}) as source,
        ):
            for event in source.iter_sse():
                if event.event == "job" and event.json()["status"] == "deleted":
                    assert event.json()["id"] == first["id"]
                    break

        # With the server running, through the CLI.
        done = run_cli("delete", second["id"], *store_args(any_store, data_dir))
        assert done.returncode == 0, done.stdout + done.stderr
        wait_until(lambda: live.client.get(f"/api/jobs/{second['id']}").status_code == 404)
        _assert_gone(live, second)

        # A job that has not ended cannot be deleted.
        running = live.submit("silent", seconds=60)
        live.wait_job(running["id"], ("running",))
        refused = live.client.delete(f"/api/jobs/{running['id']}")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "conflict"
        refused_cli = run_cli("delete", running["id"], *store_args(any_store, data_dir))
        assert refused_cli.returncode == 1
        assert "only an ended job can be deleted" in refused_cli.stderr
        live.client.post(f"/api/jobs/{running['id']}/cancel")
        live.wait_job(running["id"], ("cancelled",))

        # The next job is numbered after every job ever submitted.
        latest = _run_jobs(live, 1)[0]
        assert live.job(latest["id"])["number"] == 6
        kept = _numbers(live)
        assert kept == {
            **{k: v for k, v in numbers.items() if k not in (first["id"], second["id"])},
            running["id"]: 5,
            latest["id"]: 6,
        }
        # A reader half-way through /api/logs when the model is rebuilt.
        every_line = _all_lines(live)
        first_page = live.client.get("/api/logs", params={"limit": 250}).json()
        cursor = first_page["next_cursor"]

    _assert_verified_and_rebuilt(any_store, data_dir)
    with serving(data_dir, store=any_store) as live:
        assert _numbers(live) == kept  # a rebuild does not renumber
        # Line ids name each line's place in the store: the cursor goes on
        # after the rebuild, nothing skipped or repeated.
        first = [(line["step_job_id"], line["seq"]) for line in first_page["lines"]]
        assert first + _all_lines(live, cursor) == every_line
        assert {d["number"] for d in live.client.get("/api/deletions").json()["deletions"]} == {
            1,
            2,
        }


def test_deleting_a_job_that_fanned_out_deletes_its_children(
    tmp_path: Path, any_store: str | None
) -> None:
    data_dir = tmp_path / "data"
    with serving(data_dir, store=any_store) as live:
        job = live.wait_job(live.submit("fanout", items=30, fail_every=0)["id"])
        step = job["steps"][0]["id"]
        page = live.client.get(f"/api/steps/{step}/children", params={"limit": 100}).json()
        children = [child["id"] for child in page["children"]]
        assert len(children) == 30
        assert live.client.delete(f"/api/jobs/{job['id']}").status_code == 200
        _assert_gone(live, job)
        for child in children:
            assert live.client.get(f"/api/steps/{child}").status_code == 404
        store = JobStore(parse_store(any_store, data_dir))
        assert not [c for c in children if store.recorder.select_events(UUID(c), limit=1)]
    _assert_verified_and_rebuilt(any_store, data_dir)


def test_prune_deletes_the_jobs_that_ended_long_enough_ago_and_the_file_shrinks(
    tmp_path: Path, any_store: str | None
) -> None:
    data_dir = tmp_path / "data"
    age = 4.0
    with serving(data_dir, store=any_store) as live:
        old = _run_jobs(live, 3, lines=3000)
        ended = time.time()
        wait_until(lambda: time.time() > ended + age, age + 5, what="the first jobs to age")
        recent = _run_jobs(live, 3, lines=3000)
    location = parse_store(any_store, data_dir)
    files = (location.events_path, location.readmodel_path)
    size_before = sum(file_bytes(p) for p in files)

    done = run_cli("prune", "--older-than", f"{age:g}s", *store_args(any_store, data_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deleted 3 job(s)" in done.stdout

    if any_store is None:  # PostgreSQL keeps its files' size (the space is reusable)
        size_after = sum(file_bytes(p) for p in files)
        assert size_after < 0.7 * size_before, (size_before, size_after, done.stdout)
    _assert_verified_and_rebuilt(any_store, data_dir)
    with serving(data_dir, store=any_store) as live:
        for job in old:
            _assert_gone(live, job)
        assert sorted(_numbers(live).values()) == [4, 5, 6]
        assert {job["id"] for job in recent} == set(_numbers(live))
        deletions = live.client.get("/api/deletions").json()["deletions"]
        assert {d["deleted_by"] for d in deletions} == {"cli prune"}


def test_serve_retention_prunes_at_start(tmp_path: Path, any_store: str | None) -> None:
    data_dir = tmp_path / "data"
    age = 3.0
    with serving(data_dir, store=any_store) as live:
        old = _run_jobs(live, 2)
    ended = time.time()
    wait_until(lambda: time.time() > ended + age, age + 5, what="the jobs to age")
    with serving(data_dir, store=any_store, retention=age) as live:
        for job in old:
            wait_until(lambda job=job: live.client.get(f"/api/jobs/{job['id']}").status_code == 404)
        fresh = _run_jobs(live, 1)[0]
        assert live.job(fresh["id"])["number"] == 3
        deletions = live.client.get("/api/deletions").json()["deletions"]
        assert {d["deleted_by"] for d in deletions} == {"retention"}
    _assert_verified_and_rebuilt(any_store, data_dir)


def test_a_deletion_the_read_model_has_not_applied_yet_converges(
    tmp_path: Path, any_store: str | None
) -> None:
    """The events are gone and the tombstone stored, and then the process
    stops before any read model applies it (as a crash would leave it)."""
    data_dir = tmp_path / "data"
    with serving(data_dir, store=any_store) as live:
        first, second = _run_jobs(live, 2)
    store = JobStore(parse_store(any_store, data_dir))
    try:
        delete_job(store, first["id"], 1, time.time(), "test")
    finally:
        store.close()
    with serving(data_dir, store=any_store) as live:
        wait_until(lambda: live.client.get(f"/api/jobs/{first['id']}").status_code == 404)
        _assert_gone(live, first)
        assert _numbers(live) == {second["id"]: 2}
    _assert_verified_and_rebuilt(any_store, data_dir)


def test_bad_durations_are_refused(tmp_path: Path) -> None:
    for bad in ("30", "d", "-1d", "0d", "3 days"):
        done = run_cli("prune", f"--older-than={bad}", "--data-dir", str(tmp_path))
        assert done.returncode == 2, bad
        assert "duration" in done.stderr, done.stderr
