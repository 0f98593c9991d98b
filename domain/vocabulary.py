"""The words steptrail's events, read model and API share: job and step
statuses, log levels, and the layout of a stored log line.

Written here once; the aggregates, the projector, the queries, the API's
choices and the built-in jobs read them from here (the page has its own copy
in ui/vocabulary.js, the one other place).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

# Statuses. A job is queued, running, then final; a step is pending until it
# starts, running, then final.
QUEUED: Final = "queued"
RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
SKIPPED: Final = "skipped"  # a step that did not run (an earlier one failed, or it skipped itself)
ABANDONED: Final = "abandoned"  # a step whose server stopped while it ran
PENDING: Final = "pending"  # a step that has not started yet

JOB_FINAL: Final = (SUCCEEDED, FAILED, CANCELLED)
JOB_STATUSES: Final = (QUEUED, RUNNING, *JOB_FINAL)
STEP_FINAL: Final = (*JOB_FINAL, SKIPPED, ABANDONED)

# The five levels a line is counted under, with logging's numbers for them.
LEVEL_NUMBERS: Final = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
LEVELS: Final = tuple(LEVEL_NUMBERS)
LEVEL_NAMES: Final = {n: name for name, n in LEVEL_NUMBERS.items()}


def level_name(levelno: int) -> str:
    """Map any numeric logging level onto one of the five counted levels."""
    for name, number in reversed(LEVEL_NUMBERS.items()):
        if levelno >= number:
            return name
    return LEVELS[0]


class LineField(IntEnum):
    """A stored line is a compact list in this order (``StepLogged.lines_json``):
    ``[seq, ts, level, logger, message, fields, group]``; ``fields`` is the
    JSON text of the line's structured fields, or None; ``group`` is the seq
    of the line that opened the innermost group holding the line, or None at
    the top level (a group's opening line is held by the group around it).
    Lines stored before groups existed end after ``fields``: read as None.
    The member is the index."""

    SEQ = 0
    TS = 1
    LEVEL = 2
    LOGGER = 3
    MESSAGE = 4
    FIELDS = 5
    GROUP = 6


LINE_FIELDS: Final = tuple(field.name.lower() for field in LineField)

# Collapsible groups of lines. A line logged as ``::group::NAME`` opens a
# group (``StepContext.group`` does too), ``::endgroup::`` closes the
# innermost one and is its last line. Deeper nesting than this is refused:
# the opening line is an ordinary line, the group is not opened.
GROUP_COMMAND: Final = "::group::"
ENDGROUP_COMMAND: Final = "::endgroup::"
MAX_GROUP_DEPTH: Final = 32
MAX_GROUP_NAME: Final = 200
