"""The two event-sourced aggregates: a Manager (one job run) and a StepJob (one
attempt of one step).

A log line exists only inside a ``StepJob.StepLogged`` event. The step job assigns
every line its ``seq`` (1, 2, 3, ... within the step job), so a step's line count is
its ``last_seq`` and ordering never depends on clocks.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID, uuid5

import orjson
from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic, register_topic

# The vocabulary is domain/vocabulary.py's; the names other modules have
# always imported from here stay importable from here.
from steptrail.domain.vocabulary import ABANDONED as ABANDONED
from steptrail.domain.vocabulary import CANCELLED as CANCELLED
from steptrail.domain.vocabulary import FAILED as FAILED
from steptrail.domain.vocabulary import JOB_FINAL as JOB_FINAL
from steptrail.domain.vocabulary import LEVELS as LEVELS
from steptrail.domain.vocabulary import LINE_FIELDS, MAX_GROUP_DEPTH, LineField
from steptrail.domain.vocabulary import PENDING as PENDING
from steptrail.domain.vocabulary import QUEUED as QUEUED
from steptrail.domain.vocabulary import RUNNING as RUNNING
from steptrail.domain.vocabulary import SKIPPED as SKIPPED
from steptrail.domain.vocabulary import STEP_FINAL as STEP_FINAL
from steptrail.domain.vocabulary import SUCCEEDED as SUCCEEDED
from steptrail.domain.vocabulary import level_name as level_name

# Stores written before the package moved under ``steptrail`` name these classes
# ``domain.aggregates:…``: such events still resolve, load and replay.
LEGACY_MODULE = "domain.aggregates"
register_topic(LEGACY_MODULE, sys.modules[__name__])


def stored_topics(cls: type) -> tuple[str, str]:
    """Every topic events of ``cls`` may be stored under: its own, and the one
    a store written before the move gave them (for SQL that filters on topic)."""
    topic = get_topic(cls)
    return topic, LEGACY_MODULE + topic[len(__name__) :]


def line_dict(line: list[Any]) -> dict[str, Any]:
    """A stored line as an object, its fields as a dict (a line stored before
    groups existed is at the top level)."""
    named = dict(zip(LINE_FIELDS, [*line, None][: len(LINE_FIELDS)], strict=True))
    fields = line[LineField.FIELDS]
    return {**named, "fields": orjson.loads(fields) if fields else {}}


def _fields_text(fields: dict[str, Any] | None) -> str | None:
    """Version 1 lines kept fields as a dict."""
    return orjson.dumps(fields).decode() if fields else None


class Manager(Aggregate):
    """One run of a job definition: an ordered list of steps.

    ``step_job_ids`` grows at each StepStarted, so readers know a step's id the
    moment it starts, never only at the end of the job.
    """

    if TYPE_CHECKING:  # made by the @event decorators below; named for the type checker
        ManagerSubmitted: ClassVar[type[Any]]
        ManagerStarted: ClassVar[type[Any]]
        StepStarted: ClassVar[type[Any]]
        StepFinished: ClassVar[type[Any]]
        CancelRequested: ClassVar[type[Any]]
        ManagerCompleted: ClassVar[type[Any]]
        ManagerRetried: ClassVar[type[Any]]

    @event("ManagerSubmitted")
    def __init__(
        self,
        definition: str,
        params: dict[str, Any],
        step_names: list[str],
        max_attempts: int = 1,
    ) -> None:
        self.definition = definition
        self.params = params
        self.step_names = step_names
        self.max_attempts = max_attempts
        self.status = QUEUED
        self.worker_id: str | None = None
        self.step_job_ids: list[str] = []
        self.step_status = [PENDING] * len(step_names)
        self.step_attempts = [0] * len(step_names)
        self.done_steps: list[int] = []  # ended succeeded or skipped by their own code
        self.resume_from = 0
        self.cancel_requested = False
        self.error: str | None = None

    @event("ManagerStarted")
    def start(self, worker_id: str) -> None:
        self.status = RUNNING
        self.worker_id = worker_id

    @event("StepStarted")
    def step_started(self, step_job_id: str, step_name: str, step_index: int, attempt: int) -> None:
        self.step_job_ids.append(step_job_id)
        self.step_status[step_index] = RUNNING
        self.step_attempts[step_index] = attempt

    @event("StepFinished")
    def step_finished(self, step_index: int, status: str) -> None:
        self.step_status[step_index] = status
        if status in (SUCCEEDED, SKIPPED) and step_index not in self.done_steps:
            self.done_steps.append(step_index)

    @event("CancelRequested")
    def request_cancel(self) -> None:
        self.cancel_requested = True

    @event("ManagerCompleted")
    def complete(self, status: str, error: str | None = None) -> None:
        self.status = status
        self.error = error
        self.step_status = [SKIPPED if s == PENDING else s for s in self.step_status]

    @event("ManagerRetried")
    def retry(self, from_index: int, reason: str) -> None:
        """Queue the run again, keeping the steps before ``from_index``."""
        self.status = QUEUED
        self.error = None
        self.cancel_requested = False
        self.worker_id = None
        self.resume_from = from_index
        self.done_steps = [i for i in self.done_steps if i < from_index]
        for i in range(from_index, len(self.step_status)):
            self.step_status[i] = PENDING

    def first_unfinished_step(self) -> int:
        """Index of the first step that has not ended well (where a retry starts)."""
        # Not inferred from step_status: a step reset by a retry and then marked
        # skipped by a cancel never ran to its end.
        for i in range(len(self.step_status)):
            if i not in self.done_steps:
                return i
        return len(self.step_status)


def step_job_id_for(manager_id: UUID | str, step_index: int, attempt: int) -> UUID:
    """Deterministic id: two workers starting the same attempt collide on save."""
    return uuid5(UUID(str(manager_id)), f"step:{step_index}:attempt:{attempt}")


# The last item of a raw line, when there is one: a group's name (the line
# opens that group) or CLOSES_GROUP (the line closes the innermost group).
CLOSES_GROUP = 1


class StepJob(Aggregate):
    """One attempt of one step. Its identity (manager, name, index, attempt) is
    fixed at creation and carried by every line it logs.

    Version 2 keeps ``open_groups``, the seqs of the lines that opened the
    groups still open, outermost first (older snapshots had none open)."""

    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["open_groups"] = []

    if TYPE_CHECKING:  # made by the @event decorators below; named for the type checker
        StepStarted: ClassVar[type[Any]]
        StepProgress: ClassVar[type[Any]]
        StepCompleted: ClassVar[type[Any]]
        ChildStarted: ClassVar[type[Any]]
        ResultStored: ClassVar[type[Any]]
        ChildrenQueued: ClassVar[type[Any]]
        # A child's (set by ChildQueued and after; see parent_of, children_of)
        child_index: int
        map_no: int
        label: str
        function: str
        item_json: str
        result_json: str | None

    @staticmethod
    def create_id(manager_id: str, step_index: int, attempt: int, **_: Any) -> UUID:
        return step_job_id_for(manager_id, step_index, attempt)

    @event("StepStarted")
    def __init__(
        self,
        manager_id: str,
        step_name: str,
        step_index: int,
        attempt: int,
        worker_id: str,
    ) -> None:
        self.manager_id = manager_id
        self.step_name = step_name
        self.step_index = step_index
        self.attempt = attempt
        self.worker_id = worker_id
        self.status = RUNNING
        self.last_seq = 0
        self.counts = dict.fromkeys(LEVELS, 0)
        self.progress: dict[str, Any] = {"current": 0, "total": None, "message": ""}
        self.error: str | None = None
        self.traceback: str | None = None
        self.open_groups: list[int] = []

    class StepLogged(Aggregate.Event):
        """Consecutive lines of this step, numbered from ``first_seq``.

        Version 2 stores the lines as one JSON text: the event store's
        transcoder then copies a string instead of building every line, and
        readers parse it with orjson (rebuilds run ~2x faster). Version 1
        stored them as a list, with fields as a dict. Version 3 adds groups:
        each line's ``group``, the groups the event opens (``groups``: ``[seq,
        parent seq or None, name]``) and those open after it (``open_groups``);
        older lines, which end before ``group``, are not rewritten."""

        class_version = 3
        first_seq: int
        last_seq: int
        lines_json: str
        counts: dict[str, int]
        groups: list[list[Any]]
        open_groups: list[int]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            fields = LineField.FIELDS
            lines = [[*line[:fields], _fields_text(line[fields])] for line in state.pop("lines")]
            state["lines_json"] = orjson.dumps(lines).decode()

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["groups"] = []
            state["open_groups"] = []

        @property
        def lines(self) -> list[list[Any]]:
            lines: list[list[Any]] = orjson.loads(self.lines_json)
            return lines

    def log(self, raw_lines: list[list[Any]]) -> list[list[Any]]:
        """Number raw lines ``[ts, level, logger, message, fields]`` (and, for
        a line that opens or closes a group, the group's name or
        :data:`CLOSES_GROUP`), place each in its group, record them, and
        return them numbered. ``[CLOSES_GROUP]`` alone closes the innermost
        group without a line."""
        first = self.last_seq + 1
        stack = list(self.open_groups)
        groups: list[list[Any]] = []
        lines: list[list[Any]] = []
        for raw in raw_lines:
            if len(raw) == 1:
                if stack:
                    stack.pop()
                continue
            seq = first + len(lines)
            op = raw[5] if len(raw) > 5 else None
            group = stack[-1] if stack else None
            if op == CLOSES_GROUP and stack:
                stack.pop()  # the closing line is the group's last line
            elif isinstance(op, str) and len(stack) < MAX_GROUP_DEPTH:
                groups.append([seq, group, op])
                stack.append(seq)
            lines.append([seq, *raw[:5], group])
        counts: dict[str, int] = {}
        for line in lines:
            level = line[LineField.LEVEL]
            counts[level] = counts.get(level, 0) + 1
        self._logged(
            first_seq=first,
            last_seq=first + len(lines) - 1,
            lines_json=orjson.dumps(lines).decode(),
            counts=counts,
            groups=groups,
            open_groups=stack,
        )
        return lines

    @event(StepLogged)
    def _logged(
        self,
        first_seq: int,
        last_seq: int,
        lines_json: str,
        counts: dict[str, int],
        groups: list[list[Any]],
        open_groups: list[int],
    ) -> None:
        assert first_seq == self.last_seq + 1, "lines must be consecutive"
        self.last_seq = last_seq
        self.open_groups = open_groups
        for level, n in counts.items():
            self.counts[level] = self.counts.get(level, 0) + n

    @event("StepProgress")
    def report_progress(self, current: float, total: float | None, message: str) -> None:
        self.progress = {"current": current, "total": total, "message": message}

    @event("StepCompleted")
    def complete(self, status: str, error: str | None = None, traceback: str | None = None) -> None:
        self.status = status
        self.error = error
        self.traceback = traceback

    # Fan-out (domain/fanout.py): a step's children are step jobs too, created
    # queued by their parent and started by whichever process claims them.

    class ChildQueued(Aggregate.Created):
        """A child step job, created queued: the item it runs and where it
        belongs. Its fields after ``worker_id`` are the child's alone."""

        manager_id: str
        step_name: str
        step_index: int
        attempt: int
        worker_id: str | None
        parent_step_job_id: str
        child_index: int
        map_no: int
        label: str
        function: str
        item_json: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = QUEUED
            aggregate.parent_step_job_id = self.parent_step_job_id
            aggregate.child_index = self.child_index
            aggregate.map_no = self.map_no
            aggregate.label = self.label
            aggregate.function = self.function
            aggregate.item_json = self.item_json
            aggregate.result_json = None

    @classmethod
    def queue_child(
        cls, parent: StepJob, map_no: int, child_index: int, attempt: int, **child: str
    ) -> StepJob:
        """A queued child of ``parent`` (``child``: label, function, item_json)."""
        return cls._create(
            cls.ChildQueued,
            id=child_job_id_for(parent.manager_id, parent.step_index, map_no, child_index, attempt),
            manager_id=parent.manager_id,
            step_name=parent.step_name,
            step_index=parent.step_index,
            attempt=attempt,
            worker_id=None,
            parent_step_job_id=str(parent.id),
            child_index=child_index,
            map_no=map_no,
            **child,
        )

    @event("ChildStarted")
    def claim(self, worker_id: str) -> None:
        """A queued child starts: saved at the version read, so one claim wins."""
        self.status = RUNNING
        self.worker_id = worker_id

    @event("ResultStored")
    def store_result(self, result_json: str) -> None:
        self.result_json = result_json

    @event("ChildrenQueued")
    def children_queued(self, child_ids: list[str]) -> None:
        """This step queued these children (to close them if it is abandoned)."""
        self.child_ids = [*children_of(self), *child_ids]


def parent_of(step: StepJob) -> str | None:
    """The step a child belongs to; None for a step of the job (steps stored
    before fan-out existed have no such attribute, even in snapshots)."""
    parent: str | None = getattr(step, "parent_step_job_id", None)
    return parent


def children_of(step: StepJob) -> list[str]:
    """Every child step job id this step queued, in order."""
    ids: list[str] = getattr(step, "child_ids", [])
    return ids


def child_job_id_for(
    manager_id: UUID | str, step_index: int, map_no: int, child_index: int, attempt: int
) -> UUID:
    """Deterministic, and independent of the parent's attempt: a retried step
    finds the children its earlier attempts ran (and keeps their results)."""
    return uuid5(
        UUID(str(manager_id)),
        f"step:{step_index}:map:{map_no}:child:{child_index}:attempt:{attempt}",
    )
