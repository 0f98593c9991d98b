"""``steptrail tail JOB_ID [--step NAME]``: follow a job's lines in the terminal.

Steps are printed one step job at a time, in the order they started, each in
seq order: first what the read model already has (``/api/steps/{id}/logs``,
and ``/api/logs?parent_step_job_id=`` for the children of a step that fans
out), then what the job's stream (``/api/stream?lines=all``) brings, resuming
after the last position received when the connection drops (a server
restart), and printing each seq of each step job once. A step's children are
printed with it, tagged with their index (``fetch#1.17``), each in seq order,
interleaved as they ran. It exits when the job has ended and every line is printed: 0
if the job succeeded, 1 if it failed or was cancelled. Lines go through
:func:`domain.terminal.for_terminal`: nothing in them can drive the terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Generator
from contextlib import closing
from datetime import datetime
from functools import partial
from typing import Any, TextIO

import httpx
import orjson
from httpx_sse import connect_sse

from steptrail.domain.aggregates import JOB_FINAL, STEP_FINAL, SUCCEEDED
from steptrail.domain.console import child_tag, console_line, console_where, step_tag
from steptrail.domain.terminal import for_terminal

PAGE = 5000
READ_TIMEOUT = 30.0  # the stream pings every 10 s: silence this long means it is gone


class Lost(Exception):
    """The server stayed unreachable for longer than the reconnect window."""


class JobNotFound(Exception):
    pass


def line_text(job_id: str, tag: str, line: dict[str, Any]) -> str:
    """The server console's format: time, level, job/tag, seq, logger."""
    clock = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).astimezone()
    where = console_where(job_id, tag)
    return console_line(
        f"{clock:%H:%M:%S}", line["level"], where, line["seq"], line["logger"], line["message"]
    )


class Tail:
    def __init__(
        self,
        client: httpx.Client,
        job_id: str,
        step_name: str | None,
        out: TextIO,
        reconnect_seconds: float,
        colour: bool = False,
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.step_name = step_name
        self.out = out
        self.reconnect_seconds = reconnect_seconds
        self.colour = colour
        self.job: dict[str, Any] = {}
        self.steps: dict[str, dict[str, Any]] = {}  # latest row of each step job
        self.printed: dict[str, int] = {}  # last seq printed, per step job
        self.children_printed: dict[str, int] = {}  # lines printed of a step's children
        self.position = 0  # the stream cursor: everything up to it is known

    # talking to the server, through restarts

    def _backoff(
        self, error: Exception, lost_at: float | None, delay: float
    ) -> tuple[float, float]:
        """Wait before trying the server again; give up after the reconnect
        window. Returns when the loss started and the next delay."""
        now = time.monotonic()
        if lost_at is None:
            lost_at = now
            print(f"steptrail: lost the server ({error}); reconnecting", file=sys.stderr)
        if now - lost_at > self.reconnect_seconds:
            raise Lost(f"the server was unreachable for {self.reconnect_seconds:.0f} s") from error
        time.sleep(delay)  # a pause between attempts, not synchronisation
        return lost_at, min(delay * 2, 2.0)

    def _get(self, path: str, **params: Any) -> dict[str, Any]:
        lost_at, delay = None, 0.1
        while True:
            try:
                r = self.client.get(path, params=params)
            except httpx.TransportError as e:
                lost_at, delay = self._backoff(e, lost_at, delay)
                continue
            if r.status_code == 404:
                raise JobNotFound(r.json()["error"]["message"])
            r.raise_for_status()
            job: dict[str, Any] = r.json()
            return job

    def _messages(self, lines: bool) -> Generator[tuple[str, Any]]:
        """The stream from the cursor on; after a drop, again from the last id.
        ``lines``: with the lines of every step job of the job (the one
        followed and its children; the others are printed when their turn
        comes, from the read model)."""
        lost_at, delay = None, 0.1
        while True:
            params = {"job_id": self.job_id, "after": self.position}
            if lines:
                params["lines"] = "all"
            try:
                with connect_sse(self.client, "GET", "/api/stream", params=params) as source:
                    source.response.raise_for_status()
                    lost_at, delay = None, 0.1
                    for sse in source.iter_sse():
                        yield sse.event, orjson.loads(sse.data) if sse.data else None
                        if sse.id:
                            self.position = int(sse.id)
            except httpx.TransportError as e:
                lost_at, delay = self._backoff(e, lost_at, delay)

    # what to print next

    def _wanted(self, step_job_id: str) -> bool:
        step = self.steps.get(step_job_id)
        return self.step_name is None or (step is not None and step["name"] == self.step_name)

    def _done(self, step_job_id: str) -> bool:
        """The step has ended, and so has every child it queued, and all their
        lines are printed (a step's row counts its children's lines)."""
        step = self.steps[step_job_id]
        if step["status"] not in STEP_FINAL or self.printed.get(step_job_id, 0) < step["last_seq"]:
            return False
        children = step["children"]
        return children is None or (
            children["ended"] == children["total"]
            and self.children_printed.get(step_job_id, 0) >= children["counts"]["total"]
        )

    def _next_step(self) -> str | None:
        """The first started step job (in start order) not printed to its end."""
        step_job_id: str
        for step_job_id in self.job["step_job_ids"]:
            if (
                step_job_id in self.steps
                and self._wanted(step_job_id)
                and not self._done(step_job_id)
            ):
                return step_job_id
        return None

    def _tag(self, line: dict[str, Any]) -> str:
        parent = line["parent_step_job_id"]
        if parent is None:
            return step_tag(line["step_name"], line["attempt"])
        step = step_tag(line["step_name"], self.steps[parent]["attempt"])
        return child_tag(step, line["child_index"], line["attempt"])

    def _print(self, current: str, lines: list[dict[str, Any]]) -> None:
        """Print the lines of ``current`` and of its children not printed yet
        (each step job's seqs once, in order); lines of other steps wait for
        their step's turn."""
        out = []
        for line in lines:
            step_job_id, parent = line["step_job_id"], line["parent_step_job_id"]
            ours = current in (step_job_id, parent)
            if not ours or line["seq"] <= self.printed.get(step_job_id, 0):
                continue
            out.append(for_terminal(line_text(self.job_id, self._tag(line), line), self.colour))
            self.printed[step_job_id] = line["seq"]
            if parent is not None:
                self.children_printed[parent] = self.children_printed.get(parent, 0) + 1
        if out:
            self.out.write("\n".join(out) + "\n")
            self.out.flush()

    # following

    def _catch_up(self, step_job_id: str) -> None:
        """The step's lines the read model has now, a page at a time."""
        while True:
            page = self._get(
                f"/api/steps/{step_job_id}/logs",
                after_seq=self.printed.get(step_job_id, 0),
                limit=PAGE,
            )
            self.steps[step_job_id] = page["step"]
            self._print(step_job_id, page["lines"])
            if len(page["lines"]) < PAGE:
                break
        if self.steps[step_job_id]["children"] is not None:
            self._catch_up_children(step_job_id)

    def _catch_up_children(self, step_job_id: str) -> None:
        """The lines of the step's children the read model has now, in store
        order (so in seq order per child). Children queued later log later:
        the stream brings their lines."""
        cursor = None
        while True:
            params: dict[str, Any] = {"parent_step_job_id": step_job_id, "limit": PAGE}
            if cursor is not None:
                params["cursor"] = cursor
            page = self._get("/api/logs", **params)
            self._print(step_job_id, page["lines"])
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def _follow(self, step_job_id: str | None, until: Callable[[], bool]) -> None:
        with closing(self._messages(step_job_id is not None)) as messages:  # closes the connection
            for kind, data in messages:
                if kind == "job":
                    self.job = data
                elif kind == "step":
                    self.steps[data["id"]] = data
                elif kind == "logs" and step_job_id is not None:
                    self._print(step_job_id, data["lines"])
                if until():
                    return

    def run(self) -> int:
        self.job = self._get(f"/api/jobs/{self.job_id}")
        self.position = self.job["position"]
        if self.step_name is not None and self.step_name not in self.job["step_names"]:
            raise JobNotFound(
                f"job {self.job_id} has no step {self.step_name!r}; its steps:"
                f" {', '.join(self.job['step_names'])}"
            )
        self.steps = {s["id"]: s for s in self.job.pop("steps") if s["id"] is not None}
        while True:
            current = self._next_step()
            if current is not None:
                self._catch_up(current)
                if not self._done(current):
                    self._follow(current, partial(self._done, current))
            elif self.job["status"] in JOB_FINAL:
                return 0 if self.job["status"] == SUCCEEDED else 1
            else:  # between steps: wait for the next one to start, or the end
                self._follow(
                    None, lambda: self._next_step() is not None or self.job["status"] in JOB_FINAL
                )
