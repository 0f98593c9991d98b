"""Issue 4, show 5: ``steptrail tail`` prints a running job's lines in seq order
as they arrive, resumes after a server restart without gaps, and exits 0 when
the job succeeds (non-zero when it fails)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, LiveServer, ServerProcess, free_port, wait_until

LINE = re.compile(r"^\d\d:\d\d:\d\d (\w+) +\[(\w{8})/(.+)#(\d+)\] +(\d+) (\S+): (.*)$")


@dataclass
class TailProcess:
    """``steptrail tail`` in its own process; its stdout collected as it comes."""

    args: list[str]
    lines: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    reader: threading.Thread | None = None

    def start(self) -> TailProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "steptrail", "tail", *self.args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait(self, timeout: float = 60) -> tuple[int, str]:
        """Exit status and stderr, once every line of stdout has been read."""
        assert self.proc is not None and self.proc.stderr is not None
        assert self.reader is not None
        code = self.proc.wait(timeout)
        self.reader.join(10)
        return code, self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def seqs(self) -> dict[tuple[str, int], list[int]]:
        """Printed seqs per (step name, attempt), in printed order."""
        out: dict[tuple[str, int], list[int]] = {}
        for text in self.lines:
            m = LINE.match(text)
            if m:
                out.setdefault((m.group(3), int(m.group(4))), []).append(int(m.group(5)))
        return out


@pytest.fixture
def tails() -> Iterator[list[TailProcess]]:
    started: list[TailProcess] = []
    yield started
    for t in started:
        t.kill()


def test_tail_prints_lines_as_they_arrive_and_exits_0(
    server: LiveServer, tails: list[TailProcess]
) -> None:
    job = server.submit("drip", lines=300, interval=0.01)
    tail = TailProcess([job["id"], "--url", server.base_url]).start()
    tails.append(tail)

    wait_until(lambda: len(tail.lines) >= 10, what="the first lines")
    assert server.job(job["id"])["status"] == "running", "lines came while the job ran"
    code, stderr = tail.wait()
    assert code == 0, stderr

    finished = server.wait_job(job["id"])
    assert tail.seqs() == {("drip", 1): list(range(1, 301)), ("done", 1): [1]}
    assert len(tail.lines) == 301
    first = LINE.match(tail.lines[0])
    assert first is not None
    assert first.groups() == ("INFO", job["id"][:8], "drip", "1", "1", "drip.drip", "drip 1")
    assert LINE.match(tail.lines[-1]).group(7) == "done"  # type: ignore[union-attr]
    assert finished["status"] == "succeeded"


def test_tail_resumes_after_a_server_restart_without_gaps(
    tmp_path: Path, tails: list[TailProcess]
) -> None:
    proc = ServerProcess(tmp_path / "data", free_port()).start()
    try:
        r = httpx.post(
            f"{proc.base_url}/api/jobs",
            json={"definition": "retried-drip", "params": {"lines": 300, "interval": 0.01}},
            timeout=10,
        )
        job_id = r.json()["id"]
        tail = TailProcess([job_id, "--url", proc.base_url]).start()
        tails.append(tail)
        wait_until(lambda: len(tail.lines) >= 50, 30, what="lines before the kill")

        proc.kill()  # attempt 1 dies with the server; attempt 2 runs after the restart
        proc.start()
        code, stderr = tail.wait(90)
        assert code == 0, stderr
        assert "reconnecting" in stderr

        job = httpx.get(f"{proc.base_url}/api/jobs/{job_id}", timeout=10).json()
        assert job["status"] == "succeeded"
        first, second = job["steps"]
        assert (first["status"], second["status"]) == ("abandoned", "succeeded")
        printed = tail.seqs()
        assert list(printed) == [("drip", 1), ("drip", 2)], "attempt 1 first, then attempt 2"
        assert printed[("drip", 1)] == list(range(1, first["last_seq"] + 1))
        assert printed[("drip", 2)] == list(range(1, 301))
    finally:
        proc.stop()


def test_tail_exits_1_when_the_job_fails(server: LiveServer, tails: list[TailProcess]) -> None:
    job = server.submit("failing")
    tail = TailProcess([job["id"], "--url", server.base_url]).start()
    tails.append(tail)
    code, _ = tail.wait()
    assert code == 1
    assert list(tail.seqs()) == [("done", 1), ("fails", 1)]
    assert any("ValueError: this step always fails" in x for x in tail.lines)


def test_tail_one_step_and_bad_arguments(server: LiveServer, tails: list[TailProcess]) -> None:
    job = server.wait_job(server.submit("drip", lines=5, interval=0)["id"])
    only_done = TailProcess([job["id"], "--url", server.base_url, "--step", "done"]).start()
    tails.append(only_done)
    assert only_done.wait()[0] == 0
    assert only_done.seqs() == {("done", 1): [1]}

    no_step = TailProcess([job["id"], "--url", server.base_url, "--step", "nope"]).start()
    tails.append(no_step)
    code, stderr = no_step.wait()
    assert code == 2 and "has no step 'nope'" in stderr

    no_job = TailProcess(["0" * 32, "--url", server.base_url]).start()
    tails.append(no_job)
    code, stderr = no_job.wait()
    assert code == 2 and "no job with id" in stderr
