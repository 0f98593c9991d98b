"""A step that fans out, seen from the terminal: ``steptrail tail`` prints
every child's lines tagged with its index (each line once, in seq order per
child, live and across a server restart), the server console uses the same
tag, and ``steptrail events`` (and ``/api/jobs/{id}/events``) lists the
children's events, each naming its step and index."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import (
    LiveServer,
    ServerProcess,
    free_port,
    get_json,
    run_cli,
    store_args,
    wait_until,
)
from tests.test_fanout import every_child_line, fan_step
from tests.test_tail import TailProcess, tails  # noqa: F401 (a fixture)

pytestmark = pytest.mark.timeout(300)

ITEMS = 50
# time, level, [job/step#attempt(.index(#attempt))], seq
TAGGED = re.compile(
    r"^\d\d:\d\d:\d\d \w+ +\[(\w{8})/([\w-]+)#(\d+)(?:\.(\d+)(?:#(\d+))?)?\] +(\d+) \S+: (.*)$"
)

Who = tuple[str, int, int | None, int]  # step name, step attempt, child index, child attempt


def printed(lines: list[str]) -> dict[Who, list[int]]:
    """Seqs per tag, in printed order; every line must carry a tag."""
    out: dict[Who, list[int]] = {}
    for text in lines:
        m = TAGGED.match(text)
        assert m, f"not a tagged line: {text!r}"
        index = None if m.group(4) is None else int(m.group(4))
        who = (m.group(2), int(m.group(3)), index, int(m.group(5) or 1))
        out.setdefault(who, []).append(int(m.group(6)))
    return out


def child_seqs(base_url: str, step_id: str) -> dict[Who, list[int]]:
    """What the API holds of each child, keyed like :func:`printed` (first attempts)."""
    children = get_json(base_url, f"/api/steps/{step_id}/children", limit=5000)["children"]
    index = {c["id"]: c["index"] for c in children}
    return {
        ("fan_out", 1, index[child], 1): seqs
        for child, seqs in every_child_line(base_url, step_id).items()
    }


def test_tail_prints_every_childs_lines_tagged_once_in_order(
    any_server: LiveServer,
    tails: list[TailProcess],  # noqa: F811
) -> None:
    server = any_server
    job = server.submit("fanout", items=ITEMS, fail_every=0, concurrency=4, child_sleep=0.2)
    tail = TailProcess([job["id"], "--url", server.base_url]).start()
    tails.append(tail)

    wait_until(lambda: any(".1" in x for x in tail.lines), 60, what="a child's first lines")
    assert server.job(job["id"])["status"] == "running", "children's lines came while they ran"
    code, stderr = tail.wait(120)
    assert code == 0, stderr

    step = fan_step(server.base_url, job["id"])
    assert step is not None
    expected = child_seqs(server.base_url, step["id"])
    assert len(expected) == ITEMS
    for who, seqs in expected.items():
        assert seqs == list(range(1, 3 + who[2] % 18 + 1))  # type: ignore[operator]
    got = printed(tail.lines)
    assert got == {**expected, ("fan_out", 1, None, 1): [1], ("done", 1, None, 1): [1]}
    assert len(tail.lines) == sum(map(len, expected.values())) + 2, "each line once"
    assert tail.lines[-2].endswith(f"sum {sum(2 * i for i in range(ITEMS))}")

    # The console echo tags a child's lines the same way.
    prefix = f"[{job['id'][:8]}/fan_out#1.17]"
    console = wait_until(
        lambda: (
            (found := [x for x in server.console.getvalue().splitlines() if prefix in x])
            and len(found) >= len(expected[("fan_out", 1, 17, 1)])
            and found
        ),
        what="child 17's lines on the console",
    )
    assert [int(x.split(prefix)[1].split()[0]) for x in console] == expected[("fan_out", 1, 17, 1)]

    # After the end: --step keeps a step's children with it (read from the read model).
    only_fan = TailProcess([job["id"], "--url", server.base_url, "--step", "fan_out"]).start()
    tails.append(only_fan)
    assert only_fan.wait()[0] == 0
    assert printed(only_fan.lines) == {**expected, ("fan_out", 1, None, 1): [1]}
    only_done = TailProcess([job["id"], "--url", server.base_url, "--step", "done"]).start()
    tails.append(only_done)
    assert only_done.wait()[0] == 0
    assert printed(only_done.lines) == {("done", 1, None, 1): [1]}


def test_tail_resumes_mid_fan_out_after_a_server_restart(
    tmp_path: Path,
    tails: list[TailProcess],  # noqa: F811
) -> None:
    proc = ServerProcess(tmp_path / "data", free_port()).start()
    try:
        r = httpx.post(
            f"{proc.base_url}/api/jobs",
            json={
                "definition": "fanout",
                "params": {"items": 200, "fail_every": 0, "child_sleep": 0.05},
            },
            timeout=10,
        )
        job_id = r.json()["id"]
        tail = TailProcess([job_id, "--url", proc.base_url]).start()
        tails.append(tail)
        wait_until(lambda: len(tail.lines) >= 100, 60, what="children's lines before the kill")

        proc.kill()  # the fan-out dies with the server: the job ends failed after the restart
        proc.start()
        code, stderr = tail.wait(120)
        assert code == 1, stderr
        assert "reconnecting" in stderr

        step = fan_step(proc.base_url, job_id)
        assert step is not None
        children = get_json(proc.base_url, f"/api/steps/{step['id']}/children", limit=5000)
        index = {c["id"]: (c["index"], c["attempt"]) for c in children["children"]}
        expected = {
            ("fan_out", 1, *index[child]): seqs
            for child, seqs in every_child_line(proc.base_url, step["id"]).items()
        }
        got = printed(tail.lines)
        assert {who: seqs for who, seqs in got.items() if who[2] is not None} == expected
        assert len(tail.lines) == sum(map(len, got.values())), "each line once"
    finally:
        proc.stop()


def test_events_list_children_under_their_step(
    any_server: LiveServer, any_store: str | None
) -> None:
    server = any_server
    job = server.wait_job(server.submit("fanout", items=ITEMS, fail_every=0)["id"])
    fan = job["steps"][0]
    children = get_json(server.base_url, f"/api/steps/{fan['id']}/children", limit=5000)
    index = {c["id"]: c["index"] for c in children["children"]}
    assert sorted(index.values()) == list(range(ITEMS))

    # The API: every child's events, in store order, each naming its parent and index.
    history: list[dict[str, Any]] = []
    after = 0
    while True:
        page = server.client.get(
            f"/api/jobs/{job['id']}/events", params={"after": after, "limit": 37}
        ).json()
        history += page["events"]
        after = page["next_after"]
        if not page["has_more"]:
            break
    positions = [e["position"] for e in history]
    assert positions == sorted(set(positions)), "store order, each event once"
    of_children = [e for e in history if e["originator_id"] in index]
    assert {e["originator_id"] for e in of_children} == set(index)
    for e in history:
        child = e["originator_id"] in index
        assert e["parent_step_job_id"] == (fan["id"] if child else None)
        assert e["child_index"] == (index[e["originator_id"]] if child else None)
    assert Counter(e["type"] for e in of_children)["StepCompleted"] == ITEMS
    logged: Counter[int] = Counter()
    for e in of_children:
        if e["type"] == "StepLogged":
            logged[e["child_index"]] += len(e["payload"]["lines"])
    assert logged == {i: 3 + i % 18 for i in range(ITEMS)}

    # The CLI: the same events, --json as the API, text tagged like tail's lines.
    data_dir = server.runtime.location.data_dir
    as_json = run_cli("events", job["id"], *store_args(any_store, data_dir), "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert [orjson.loads(x) for x in as_json.stdout.splitlines()] == history

    text = run_cli("events", job["id"], *store_args(any_store, data_dir))
    assert text.returncode == 0, text.stderr
    rows = text.stdout.splitlines()
    assert len(rows) == len(history)
    for row, event in zip(rows, history, strict=True):
        assert row.split()[0] == str(event["position"])
        if event["child_index"] is not None:
            assert row.split()[2] == f"fan_out#1.{event['child_index']}", row
