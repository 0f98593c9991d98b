"""``/api/stream`` in causal order, on SQLite and PostgreSQL.

What a client holds is never behind what the stream told it: a step message
never counts a line the client has not been sent, so a client that stops at a
step's terminal message holds every line of it. Resuming after any message id
gives the rest exactly, and one stream can follow every step of a job.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from steptrail.domain.aggregates import step_job_id_for
from tests.conftest import LiveServer

FINAL = {"succeeded", "failed", "cancelled", "abandoned", "skipped"}
JOB_FINAL = {"succeeded", "failed", "cancelled"}
READ_TIMEOUT = httpx.Timeout(10.0, read=15.0)  # longer than a ping interval

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def server(any_server: LiveServer) -> LiveServer:
    return any_server


def messages(
    base_url: str, headers: dict[str, str] | None = None, **params: Any
) -> Iterator[tuple[str, int, Any]]:
    """``(event, id, data)`` of a stream, until the caller stops reading."""
    with (
        httpx.Client(base_url=base_url, timeout=READ_TIMEOUT) as client,
        connect_sse(client, "GET", "/api/stream", params=params, headers=headers or {}) as source,
    ):
        assert source.response.status_code == 200, source.response.read()
        for sse in source.iter_sse():
            if sse.data:  # not a ping (a comment, which the parser may pass on as empty)
                yield sse.event, int(sse.id), sse.json()


class Holder:
    """What a client holds: lines per step job, and every breach of causal
    order seen (a step or job message ahead of the lines held)."""

    def __init__(self) -> None:
        self.lines: dict[str, list[dict[str, Any]]] = {}
        self.steps: dict[str, dict[str, Any]] = {}
        self.job: dict[str, Any] | None = None
        self.ahead: list[str] = []

    def seqs(self, step_job_id: str) -> list[int]:
        return [x["seq"] for x in self.lines.get(step_job_id, [])]

    def take(self, event: str, data: Any, followed: set[str] | None) -> None:
        """``followed``: step jobs whose lines the stream carries (None: all)."""
        if event == "logs":
            held = self.lines.setdefault(data["step_job_id"], [])
            held += data["lines"]
        elif event == "step":
            self.steps[data["id"]] = data
            if followed is None or data["id"] in followed:
                held = len(self.lines.get(data["id"], []))
                if data["last_seq"] > held:
                    self.ahead.append(f"step {data['name']} counts {data['last_seq']}, held {held}")
        elif event == "job":
            self.job = data
            for step_job_id, status in zip(data["step_job_ids"], data["step_status"], strict=False):
                if status in FINAL and step_job_id in self.steps:
                    held = len(self.lines.get(step_job_id, []))
                    if self.steps[step_job_id]["last_seq"] > held:
                        self.ahead.append(f"job shows step {step_job_id} {status}, held {held}")


def test_a_client_stopping_at_the_step_end_holds_every_line(server: LiveServer) -> None:
    """~3,000 lines at ~2,000 lines/s, followed live: no step message runs
    ahead of the lines, and the terminal message comes after the last one."""
    n = 3000
    job = server.submit("drip", lines=n, interval=0.0005)
    step_id = str(step_job_id_for(job["id"], 0, 1))  # known before the step starts
    holder = Holder()
    statuses = []
    for event, _, data in messages(server.base_url, after=job["position"], step_job_id=step_id):
        holder.take(event, data, {step_id})
        if event == "step" and data["id"] == step_id:
            statuses.append(data["status"])
            if data["status"] in FINAL:
                break
    assert holder.ahead == []
    assert "running" in statuses, "followed while it ran, not read after the fact"
    assert holder.seqs(step_id) == list(range(1, n + 1)), "lines lost at the terminal state"
    assert holder.steps[step_id]["last_seq"] == n


def _recorded(
    base_url: str, job_id: str, headers: dict[str, str] | None = None, **params: Any
) -> list[tuple[str, int, Any]]:
    """Every message of a stream over the whole job, until its terminal job message."""
    out = []
    for event, msg_id, data in messages(base_url, headers, after=0, job_id=job_id, **params):
        out.append((event, msg_id, data))
        if event == "job" and data["status"] in JOB_FINAL:
            return out
    raise AssertionError("the stream ended before the job")


def _lines_by_step(recorded: list[tuple[str, int, Any]]) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = {}
    for event, _, data in recorded:
        if event == "logs":
            seqs.setdefault(data["step_job_id"], []).extend(x["seq"] for x in data["lines"])
    return seqs


def test_a_job_wide_stream_carries_every_step_once_in_order(server: LiveServer) -> None:
    n = 600
    job = server.submit("relay", lines=n, interval=0.001)
    recorded = _recorded(server.base_url, job["id"], lines="all")
    holder = Holder()
    for event, _, data in recorded:
        holder.take(event, data, None)
    final = server.job(job["id"])
    assert final["status"] == "succeeded"
    step_ids = final["step_job_ids"]
    assert len(step_ids) == 3
    assert holder.ahead == []
    assert _lines_by_step(recorded) == {s: list(range(1, n + 1)) for s in step_ids}
    ids = [msg_id for _, msg_id, _ in recorded]
    assert ids == sorted(ids), "ids never go backwards"
    assert recorded[-1][0] == "job", "the job's end comes after every line"


@pytest.mark.timeout(300)  # 6-8 s on a quiet machine; 37-70 s with the cores saturated
@pytest.mark.parametrize("lines", ["step", "all"])
def test_resume_after_every_50th_message_is_exact(server: LiveServer, lines: str) -> None:
    """Record a whole live run, then resume after every 50th message's id (as
    a browser does, with Last-Event-ID): what was held plus what comes is
    every line once, and the step rows end where they did."""
    n = 3000
    job = server.submit("relay", lines=n, interval=0.001)
    step_id = str(step_job_id_for(job["id"], 1, 1))  # the drip
    params = {"lines": "all"} if lines == "all" else {"step_job_id": step_id}
    recorded = _recorded(server.base_url, job["id"], **params)
    expected = _lines_by_step(recorded)
    assert sum(len(s) for s in expected.values()) == (3 * n if lines == "all" else n)
    cuts = range(0, len(recorded) - 1, 50)  # after the last message, nothing is to come
    print(f"{len(recorded)} messages, resumed after {len(cuts)} of them")
    assert len(cuts) >= 2, f"only {len(recorded)} messages"
    for k in cuts:
        held = recorded[: k + 1]
        headers = {"Last-Event-ID": str(held[-1][1])}
        rest = _recorded(server.base_url, job["id"], headers, **params)
        assert rest[0][0] == "ready" and rest[0][1] == held[-1][1]
        assert _lines_by_step(held + rest) == expected, f"resume after message {k}"
        holder = Holder()
        for event, _, data in held + rest:
            holder.take(event, data, None if lines == "all" else {step_id})
        assert holder.steps == {s["id"]: s for s in server.job(job["id"])["steps"]}
