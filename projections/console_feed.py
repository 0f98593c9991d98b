"""The server console, fed by the projection: every line is printed after it
is stored and projected, by the process that projects it, whichever worker
process logged it. Console output therefore never shows a line the step does
not have, and (through :class:`domain.console.ConsoleEcho`) never blocks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from steptrail.domain.aggregates import StepJob
from steptrail.domain.console import ConsoleEcho
from steptrail.projections.projector import Positioned

MAX_KNOWN_STEPS = 10_000  # prefixes kept for steps seen; others are looked up again


class ConsoleFeed:
    """``lookup(step_job_id)`` gives a step's row (job id, name, attempt) for
    steps that started before this process did."""

    def __init__(
        self, console: ConsoleEcho, lookup: Callable[[str], dict[str, Any] | None]
    ) -> None:
        self.console = console
        self.lookup = lookup
        self._where: dict[str, str] = {}

    def applied(self, events: Sequence[Positioned]) -> None:
        for _position, event in events:
            if isinstance(event, StepJob.StepStarted):
                self._remember(
                    str(event.originator_id), event.manager_id, event.step_name, event.attempt
                )
            elif isinstance(event, StepJob.StepLogged):
                where = self._prefix(str(event.originator_id))
                self.console.write(where, event.lines)

    def _remember(self, step_job_id: str, job_id: str, name: str, attempt: int) -> str:
        if len(self._where) >= MAX_KNOWN_STEPS:
            self._where.clear()
        where = self._where[step_job_id] = f"[{job_id[:8]}/{name}#{attempt}]"
        return where

    def _prefix(self, step_job_id: str) -> str:
        where = self._where.get(step_job_id)
        if where is not None:
            return where
        step = self.lookup(step_job_id)
        if step is None:
            return f"[step {step_job_id[:8]}]"
        return self._remember(step_job_id, step["job_id"], step["name"], step["attempt"])
