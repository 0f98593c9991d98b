"""The server console, fed by the projection: every line is printed after it
is stored and projected, by the process that projects it, whichever worker
process logged it. Console output therefore never shows a line the step does
not have, and (through :class:`domain.console.ConsoleEcho`) never blocks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from steptrail.domain.aggregates import StepJob
from steptrail.domain.console import ConsoleEcho, child_tag, console_where, step_tag
from steptrail.projections.projector import Positioned

MAX_KNOWN_STEPS = 10_000  # tags kept for steps seen; others are looked up again


class ConsoleFeed:
    """``lookup(step_job_id)`` gives a step's row (job id, name, attempt, and a
    child's parent and index) for steps that started before this process did."""

    def __init__(
        self, console: ConsoleEcho, lookup: Callable[[str], dict[str, Any] | None]
    ) -> None:
        self.console = console
        self.lookup = lookup
        self._known: dict[str, tuple[str, str]] = {}  # step job id -> (job id, tag)

    def applied(self, events: Sequence[Positioned]) -> None:
        for _position, event in events:
            if isinstance(event, StepJob.StepStarted):
                self._remember(
                    str(event.originator_id),
                    event.manager_id,
                    step_tag(event.step_name, event.attempt),
                )
            elif isinstance(event, StepJob.ChildQueued):
                parent = self._parent_tag(event.parent_step_job_id)
                tag = child_tag(parent, event.child_index, event.attempt)
                self._remember(str(event.originator_id), event.manager_id, tag)
            elif isinstance(event, StepJob.StepLogged):
                step_job_id = str(event.originator_id)
                known = self._known.get(step_job_id) or self._look_up(step_job_id)
                where = console_where(*known) if known else f"[step {step_job_id[:8]}]"
                self.console.write(where, event.lines)

    def _remember(self, step_job_id: str, job_id: str, tag: str) -> tuple[str, str]:
        if len(self._known) >= MAX_KNOWN_STEPS:
            self._known.clear()
        known = self._known[step_job_id] = (job_id, tag)
        return known

    def _parent_tag(self, step_job_id: str) -> str:
        known = self._known.get(step_job_id) or self._look_up(step_job_id)
        return known[1] if known else f"step {step_job_id[:8]}"

    def _look_up(self, step_job_id: str) -> tuple[str, str] | None:
        step = self.lookup(step_job_id)
        if step is None:
            return None
        parent = step["parent_step_job_id"]
        tag = step_tag(step["name"], step["attempt"])
        if parent is not None:
            tag = child_tag(self._parent_tag(parent), step["child_index"], step["attempt"])
        return self._remember(step_job_id, step["job_id"], tag)
