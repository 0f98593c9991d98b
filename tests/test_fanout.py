"""Steps that fan out (``ctx.map``), on SQLite and PostgreSQL: each child is a
step job with its own exact lines; its step's roll-up equals the sum over its
children at every moment, at the end, after a SIGKILL and a restart, and
after a rebuild; cancel ends every child; a retry runs only the failed ones."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    JOBDEFS,
    JSON_HEADERS,
    ROOT,
    LiveServer,
    ServerProcess,
    assert_live_model_is_a_rebuild,
    free_port,
    get_json,
    store_args,
    wait_until,
)
from tests.test_stream_causal import messages

pytestmark = pytest.mark.timeout(300)

LEVELS = ("debug", "info", "warning", "error", "critical")
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "skipped", "abandoned")


def children_page(base_url: str, step_id: str, **params: Any) -> dict[str, Any]:
    """The step and all its children, read in one snapshot (one page)."""
    return get_json(base_url, f"/api/steps/{step_id}/children", limit=5000, **params)  # type: ignore[no-any-return]


def summed(children: list[dict[str, Any]]) -> dict[str, Any]:
    """What a roll-up must say, from the children's own rows."""
    by_status = Counter(c["status"] for c in children)
    counts = {level: sum(c["counts"][level] for c in children) for level in LEVELS}
    ended = sum(c["status"] not in ("queued", "running") for c in children)
    return {
        "total": len(children),
        "by_status": {s: by_status.get(s, 0) for s in STATUSES},
        "ended": ended,
        "counts": {**counts, "total": sum(c["counts"]["total"] for c in children)},
    }


def rollup(step: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in step["children"].items() if k != "fraction"}


def assert_exact(base_url: str, step_id: str) -> dict[str, Any]:
    page = children_page(base_url, step_id)
    if page["children"]:
        assert rollup(page["step"]) == summed(page["children"])
    else:
        assert page["step"]["children"] is None
    return page


def fan_step(base_url: str, job_id: str, attempt: int = 1) -> dict[str, Any] | None:
    steps = get_json(base_url, f"/api/jobs/{job_id}")["steps"]
    found = [s for s in steps if s["index"] == 0 and s["attempt"] == attempt and s["id"]]
    return found[0] if found else None


def every_child_line(base_url: str, step_id: str) -> dict[str, list[int]]:
    """Every child's seqs, through /api/logs filtered by the parent step."""
    seqs: dict[str, list[int]] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"parent_step_job_id": step_id, "limit": 5000}
        if cursor:
            params["cursor"] = cursor
        page = get_json(base_url, "/api/logs", **params)
        for line in page["lines"]:
            assert line["parent_step_job_id"] == step_id
            seqs.setdefault(line["step_job_id"], []).append(line["seq"])
        cursor = page["next_cursor"]
        if cursor is None:
            return seqs


def test_rollup_is_exact_while_running_at_the_end_and_retry_runs_only_failed(
    any_server: LiveServer,
) -> None:
    base = any_server.base_url
    job = any_server.submit("fanout", items=1000, concurrency=4, child_sleep=0.01)
    step = wait_until(lambda: fan_step(base, job["id"]), 30, what="the fan-out step")
    samples = 0
    while samples < 20:
        page = assert_exact(base, step["id"])
        if page["step"]["status"] != "running":
            break
        samples += page["step"]["children"] is not None
        wait_until(lambda p=page: children_page(base, step["id"])["position"] > p["position"], 10)
    assert samples == 20, "sampled while the children ran"

    done = any_server.wait_job(job["id"], ("failed",), timeout=240)
    assert "10 of 1000 children failed" in done["error"]
    assert all(f"#{i} " in done["error"] for i in range(50, 1000, 100)), "failed ones named"
    page = assert_exact(base, step["id"])
    children = page["children"]
    assert page["step"]["children"]["by_status"]["failed"] == 10
    assert page["step"]["progress"]["fraction"] == 1.0
    failed = sorted(c["index"] for c in children if c["status"] == "failed")
    assert failed == list(range(50, 1000, 100))
    # the step ended only after its last child
    assert page["step"]["finished_at"] >= max(c["finished_at"] for c in children)
    # every child's lines are seq 1..n once, as its counts say
    seqs = every_child_line(base, step["id"])
    for child in children:
        n = child["counts"]["total"]
        assert 3 <= n <= 21  # 3-20 lines, and the failed ones' error line
        assert seqs[child["id"]] == list(range(1, n + 1))
    # a child's lines are the step routes with its id
    one = children[0]
    logs = get_json(base, f"/api/steps/{one['id']}/logs")
    assert logs["step"]["parent_step_job_id"] == step["id"]
    assert [x["seq"] for x in logs["lines"]] == seqs[one["id"]]
    assert "plain" not in logs["lines"][1]["logger"] and logs["lines"][1]["logger"] == "tests.fan"

    r = httpx.post(f"{base}/api/jobs/{job['id']}/retry", headers=JSON_HEADERS, timeout=10)
    assert r.status_code == 202, r.text
    any_server.wait_job(job["id"], ("succeeded",), timeout=120)
    again = assert_exact(base, fan_step(base, job["id"], attempt=2)["id"])  # type: ignore[index]
    rerun = sorted((c["index"], c["attempt"]) for c in again["children"])
    assert rerun == [(i, 2) for i in failed], "exactly the failed children ran again"
    assert again["step"]["children"]["by_status"]["succeeded"] == 10
    assert children_page(base, step["id"])["children"] == children, "attempt 1's children kept"


def test_the_job_stream_carries_children_and_ends_exact(any_server: LiveServer) -> None:
    base = any_server.base_url
    job = any_server.submit("fanout", items=300, concurrency=4, fail_every=0)
    held: dict[str, dict[str, Any]] = {}
    for event, _, data in messages(base, after=0, job_id=job["id"]):
        if event == "step":
            held[data["id"]] = data
        if event == "job" and data["status"] in ("succeeded", "failed", "cancelled"):
            break
    parent = next(s for s in held.values() if s["children"])
    children = [s for s in held.values() if s["parent_step_job_id"] == parent["id"]]
    assert len(children) == 300
    assert parent["children"]["by_status"]["succeeded"] == 300
    lines = {level: sum(c["counts"][level] for c in children) for level in LEVELS}
    assert parent["children"]["counts"] == {**lines, "total": sum(lines.values())}


def test_cancel_ends_every_child(any_server: LiveServer) -> None:
    base = any_server.base_url
    job = any_server.submit("fanout", items=500, concurrency=8, child_sleep=30.0)
    step = wait_until(lambda: fan_step(base, job["id"]), 30, what="the fan-out step")
    wait_until(
        lambda: (
            (s := children_page(base, step["id"])["step"]["children"])
            and s["by_status"]["running"] == 8
        ),
        30,
        what="eight children running",
    )
    r = httpx.post(f"{base}/api/jobs/{job['id']}/cancel", headers=JSON_HEADERS, timeout=10)
    assert r.status_code == 202, r.text
    # the cancel grace is 5 s: the sleeping children wake at once
    any_server.wait_job(job["id"], ("cancelled",), timeout=8)
    page = assert_exact(base, step["id"])
    assert {c["status"] for c in page["children"]} == {"cancelled"}
    assert len(page["children"]) == 500
    assert page["step"]["status"] == "cancelled"


def test_careless_children_fail_alone_and_the_step_names_them(any_server: LiveServer) -> None:
    """A result that is not JSON, an exception whose str() raises, sys.exit:
    each fails its own child; NaN progress is refused with a warning; the
    others succeed, and the roll-up still equals the sum over the children."""
    job = any_server.wait_job(any_server.submit("fanout-hostile")["id"], ("failed",))
    assert "3 of 5 children failed" in job["error"]
    step = job["steps"][0]
    page = assert_exact(any_server.base_url, step["id"])
    by_index = {c["index"]: c for c in page["children"]}
    assert [by_index[i]["status"] for i in range(5)] == ["failed"] * 3 + ["succeeded"] * 2
    assert "not a JSON value" in by_index[0]["error"]
    assert "str() raised RuntimeError" in by_index[1]["error"]
    assert by_index[2]["error"] == "SystemExit: 3"
    for i in (3, 4):
        lines = any_server.client.get(f"/api/steps/{by_index[i]['id']}/logs").json()["lines"]
        assert [x["level"] for x in lines] == ["WARNING", "INFO"], lines
        assert lines[1]["message"] == f"child {i} is fine"


def test_a_lambda_is_refused_at_map_time() -> None:
    from steptrail.domain.fanout import function_ref

    with pytest.raises(TypeError, match="module-level function"):
        function_ref(lambda ctx, item: item)

    def inner(ctx: Any, item: Any) -> Any:
        return item

    with pytest.raises(TypeError, match="module-level function"):
        function_ref(inner)


def _cli(store: str | None, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steptrail", *args, *store_args(store, data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sigkill_mid_fan_out_then_restart_and_rebuild(
    tmp_path: Path, any_store: str | None
) -> None:
    data = tmp_path / "data"
    extra = ("--store", any_store) if any_store else ()
    proc = ServerProcess(data, free_port(), extra_args=extra).start()
    try:
        r = httpx.post(
            f"{proc.base_url}/api/jobs",
            timeout=10,
            json={"definition": "fanout", "params": {"items": 1000, "child_sleep": 0.02}},
        )
        job_id = r.json()["id"]
        step = wait_until(lambda: fan_step(proc.base_url, job_id), 30)
        wait_until(
            lambda: (
                (s := children_page(proc.base_url, step["id"])["step"]["children"])
                and s["by_status"]["succeeded"] >= 100
            ),
            60,
            what="100 children to succeed",
        )
        proc.kill()
        proc.start()
        proc_job = wait_until(
            lambda: (
                (j := get_json(proc.base_url, f"/api/jobs/{job_id}"))["status"] == "failed" and j
            ),
            30,
            what="the job to end after the restart",
        )
        assert "abandoned" in proc_job["error"]
        page = assert_exact(proc.base_url, step["id"])
        statuses = Counter(c["status"] for c in page["children"])
        assert statuses["queued"] == statuses["running"] == 0, "no child left unended"
        kept = {c["index"] for c in page["children"] if c["status"] == "succeeded"}
        assert len(kept) >= 100

        r = httpx.post(f"{proc.base_url}/api/jobs/{job_id}/retry", headers=JSON_HEADERS, timeout=10)
        assert r.status_code == 202, r.text
        wait_until(
            lambda: get_json(proc.base_url, f"/api/jobs/{job_id}")["status"] == "succeeded",
            240,
            what="the retried job to succeed",
        )
        second = assert_exact(proc.base_url, fan_step(proc.base_url, job_id, 2)["id"])  # type: ignore[index]
        rerun = {c["index"] for c in second["children"]}
        assert rerun.isdisjoint(kept), "a child that had succeeded ran again"
        assert rerun | kept == set(range(1000))
    finally:
        proc.stop()
    verified = _cli(any_store, data, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert_live_model_is_a_rebuild(any_store, data, tmp_path)


assert JOBDEFS.exists()
