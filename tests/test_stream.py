"""Issue 3, show 6: ``/api/stream`` over a real uvicorn on a loopback port.

Resuming after ``Last-Event-ID`` while a writer is active gives every line
once; a client that stops reading costs the server no memory and loses
nothing when it reads again; other clients are not held up by it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from threading import Thread
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource, ServerSentEvent, connect_sse

from steptrail.api import stream
from steptrail.domain.aggregates import step_job_id_for
from steptrail.projections.changes import MAX_LINES
from tests.conftest import LiveServer, ServerProcess, free_port

FINAL = {"succeeded", "failed", "cancelled", "abandoned", "skipped"}
READ_TIMEOUT = httpx.Timeout(10.0, read=15.0)  # longer than a ping interval


@contextmanager
def open_stream(
    base_url: str, headers: dict[str, str] | None = None, **params: Any
) -> Iterator[EventSource]:
    with (
        httpx.Client(base_url=base_url, timeout=READ_TIMEOUT) as client,
        connect_sse(
            client, "GET", "/api/stream", params=params, headers=dict(headers or {})
        ) as source,
    ):
        assert source.response.status_code == 200
        yield source


class StepFollower:
    """What a client of one step has received: lines, the step's last state,
    the last id. Checks the stream's promises as messages arrive."""

    def __init__(self, step_id: str) -> None:
        self.step_id = step_id
        self.lines: list[dict[str, Any]] = []
        self.step: dict[str, Any] | None = None
        self.last_id = -1
        self.logs_messages: list[dict[str, Any]] = []
        self.carried = 0  # bytes of the stream, once it is closed
        self.error: str | None = None  # what stopped a follower in a thread

    @property
    def seqs(self) -> list[int]:
        return [x["seq"] for x in self.lines]

    def take(self, event: ServerSentEvent) -> None:
        if event.id:
            assert int(event.id) >= self.last_id, "ids go backwards"
            self.last_id = int(event.id)
        if event.event == "step" and event.json()["id"] == self.step_id:
            self.step = event.json()
        elif event.event == "logs":
            logs = event.json()
            assert len(logs["lines"]) <= MAX_LINES
            assert [x["seq"] for x in logs["lines"]] == list(
                range(logs["first_seq"], logs["last_seq"] + 1)
            ), "a logs message holds consecutive lines"
            assert all(x["position"] <= self.last_id for x in logs["lines"])
            self.logs_messages.append(logs)
            self.lines += logs["lines"]

    def complete(self) -> bool:
        return (
            self.step is not None
            and self.step["status"] in FINAL
            and len(self.lines) >= self.step["last_seq"]
        )

    def read(self, events: Iterator[ServerSentEvent], stop_after_lines: int | None = None) -> None:
        """Read until the step is complete (or this many lines arrived)."""
        for event in events:
            self.take(event)
            if self.complete() or (
                stop_after_lines is not None and len(self.lines) >= stop_after_lines
            ):
                return


def all_lines(client: httpx.Client, step_id: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    after = 0
    while True:
        page = client.get(f"/api/steps/{step_id}/logs", params={"after_seq": after, "limit": 5000})
        assert page.status_code == 200, page.text
        body = page.json()
        if not body["lines"]:
            return lines
        lines += body["lines"]
        after = body["next_after_seq"]


def first_step_id(job: dict[str, Any]) -> str:
    """Step ids are deterministic, so a client can follow a step before it starts."""
    return str(step_job_id_for(job["id"], 0, 1))


def test_resume_after_last_event_id_has_no_gap_or_duplicate_while_writing(
    server: LiveServer,
) -> None:
    job = server.submit("drip", lines=3000, interval=0.0005)
    step_id = first_step_id(job)
    follower = StepFollower(step_id)
    reconnects = 0
    with open_stream(server.base_url, after=job["position"], step_job_id=step_id) as source:
        follower.read(source.iter_sse(), stop_after_lines=150)
    # Cut the connection again and again while the step is writing, each time
    # resuming the way a browser does: same URL, Last-Event-ID header.
    while not follower.complete():
        headers = {"Last-Event-ID": str(follower.last_id)}
        with open_stream(
            server.base_url, headers, after=job["position"], step_job_id=step_id
        ) as source:
            reconnects += 1
            follower.read(source.iter_sse(), stop_after_lines=len(follower.lines) + 400)
    assert server.job(job["id"])["status"] in ("running", "succeeded")
    server.wait_job(job["id"])

    assert reconnects >= 5
    assert follower.seqs == list(range(1, 3001)), "gap or duplicate across resumes"
    assert follower.lines == all_lines(server.client, step_id)
    assert follower.step is not None and follower.step["counts"]["total"] == 3000


def test_catching_up_coalesces_lines_and_ends_with_the_terminal_state(server: LiveServer) -> None:
    job = server.wait_job(server.submit("burst", lines=5000)["id"])
    step_id = job["steps"][0]["id"]
    follower = StepFollower(step_id)
    kinds: list[str] = []
    with open_stream(server.base_url, after=0, step_job_id=step_id) as source:
        for event in source.iter_sse():
            kinds.append(event.event)
            if event.event == "ready":
                assert event.retry == stream.RETRY_MS and event.id == "0"
            follower.take(event)
            if follower.complete():
                break
    assert follower.seqs == list(range(1, 5001))
    assert len(follower.logs_messages) <= 10, "lines are batched, not one message per line"
    assert kinds[0] == "ready" and kinds[-1] == "step", "the terminal state comes after the lines"
    assert set(kinds) == {"ready", "step", "logs"}, "the finished job's row comes after the step's"


def test_job_filter_and_no_lines_without_a_step(server: LiveServer) -> None:
    start = server.client.get("/api/jobs").json()["position"]
    other = server.submit("burst", lines=50)
    mine = server.submit("failing")
    server.wait_job(other["id"])
    server.wait_job(mine["id"], ("failed",))
    seen: list[tuple[str, dict[str, Any]]] = []
    with open_stream(server.base_url, after=start, job_id=mine["id"]) as source:
        for event in source.iter_sse():
            if event.event in ("job", "step"):
                seen.append((event.event, event.json()))
            assert event.event != "logs"
            if event.event == "job" and event.json()["status"] == "failed":
                break
    assert {body["id"] if kind == "job" else body["job_id"] for kind, body in seen} == {mine["id"]}
    steps = {body["name"]: body["status"] for kind, body in seen if kind == "step"}
    assert steps == {"done": "succeeded", "fails": "failed"}


def test_last_event_id_wins_over_after(server: LiveServer) -> None:
    """A browser reconnects to the URL it first opened (with ``after``) and adds
    ``Last-Event-ID``: the header must win or lines would repeat."""
    job = server.wait_job(server.submit("burst", lines=2500)["id"])
    step_id = job["steps"][0]["id"]
    follower = StepFollower(step_id)
    with open_stream(server.base_url, after=0, step_job_id=step_id) as source:
        follower.read(source.iter_sse(), stop_after_lines=1)
    assert 0 < len(follower.lines) < 2500
    headers = {"Last-Event-ID": str(follower.last_id)}
    with open_stream(server.base_url, headers, after=0, step_job_id=step_id) as source:
        follower.read(source.iter_sse())
    assert follower.seqs == list(range(1, 2501))


@pytest.mark.parametrize(
    ("params", "headers", "field"),
    [
        ({"after": "-1"}, {}, "after"),
        ({"after": "soon"}, {}, "after"),
        ({"job_id": "nope"}, {}, "job_id"),
        ({"step_job_id": "42"}, {}, "step_job_id"),
        ({}, {"Last-Event-ID": "x"}, "Last-Event-ID"),
    ],
)
def test_bad_stream_requests_are_json_400s(
    server: LiveServer, params: dict[str, str], headers: dict[str, str], field: str
) -> None:
    r = server.client.get("/api/stream", params=params, headers=headers)
    assert r.status_code == 400
    assert r.json()["error"]["field"] == field


def test_idle_stream_gets_pings(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "PING_SECONDS", 0.2)
    position = server.client.get("/api/jobs").json()["position"]
    with (
        httpx.Client(base_url=server.base_url, timeout=READ_TIMEOUT) as client,
        client.stream("GET", "/api/stream") as response,
    ):
        lines = response.iter_lines()
        seen = [next(lines) for _ in range(5)]
        assert seen[:2] == [f"id: {position}", "event: ready"], "no `after`: starts now"
        assert seen[3:] == ["retry: 2000", ""]
        assert next(lines).startswith(": ping")
        assert next(lines) == "", "a ping is a bare comment: it never moves the position"


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _submit_burst(base_url: str, lines: int) -> dict[str, Any]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        r = client.post("/api/jobs", json={"definition": "burst", "params": {"lines": lines}})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _follow(base_url: str, job: dict[str, Any], follower: StepFollower) -> None:
    """Follow the job's first step to its end."""
    params = {"after": job["position"], "step_job_id": first_step_id(job)}
    with open_stream(base_url, **params) as source:
        follower.read(source.iter_sse())
        follower.carried = source.response.num_bytes_downloaded


def _follow_in_thread(base_url: str, job: dict[str, Any], follower: StepFollower) -> Thread:
    def run() -> None:
        try:
            _follow(base_url, job, follower)
        except Exception as e:
            follower.error = repr(e)

    thread = Thread(target=run)
    thread.start()
    return thread


def test_stalled_clients_cost_no_memory_and_lose_nothing(tmp_path: Path) -> None:
    n = 60_000
    proc = ServerProcess(tmp_path / "data", free_port()).start()
    try:
        assert proc.proc is not None
        pid = proc.proc.pid
        # Warm up: the same work with as many readers, all keeping up, twice,
        # so what is measured next is what stalling costs, nothing else.
        for _ in range(2):
            job = _submit_burst(proc.base_url, n)
            readers = [StepFollower(first_step_id(job)) for _ in range(4)]
            for thread in [_follow_in_thread(proc.base_url, job, r) for r in readers]:
                thread.join(timeout=60)
            assert [r.error for r in readers] == [None] * len(readers)
            assert all(r.seqs == list(range(1, n + 1)) for r in readers)
        carried = readers[0].carried
        before = _rss_bytes(pid)

        job = _submit_burst(proc.base_url, n)
        params = {"after": job["position"], "step_job_id": first_step_id(job)}
        with ExitStack() as stack:
            stalled = [stack.enter_context(open_stream(proc.base_url, **params)) for _ in range(3)]
            events = [source.iter_sse() for source in stalled]
            assert all(next(e).event == "ready" for e in events)
            # ...and these clients stop reading. Another one reads it all meanwhile.
            other = StepFollower(first_step_id(job))
            _follow_in_thread(proc.base_url, job, other).join(timeout=60)
            assert other.error is None and other.seqs == list(range(1, n + 1)), other.error
            after = _rss_bytes(pid)
            resumed = [StepFollower(first_step_id(job)) for _ in stalled]
            for follower, stalled_events in zip(resumed, events, strict=True):
                follower.read(stalled_events)
        growth = after - before
        print(f"one client's stream: {carried / 1e6:.1f} MB; RSS grew {growth / 1e6:.1f} MB")
        # Buffering for three stalled clients would cost three times `carried`.
        assert growth < carried, "the server buffered for stalled clients"
        assert all(f.seqs == list(range(1, n + 1)) for f in resumed), "a stalled client lost lines"
    finally:
        proc.stop()
