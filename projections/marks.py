"""A step's line columns at any store position, from ``line_marks``.

The projector adds a row per StepLogged holding the step row's line columns
(``MARK_COLUMNS``: last seq, counts by level, heartbeat) as that event left
them, keyed by (step job, position). So "the step's lines at position P" is
one indexed lookup, however many lines the step has.
"""

from __future__ import annotations

from steptrail.projections.database import Cursor, Row


def mark_at(cur: Cursor, step_job_id: str, position: int) -> Row | None:
    """The step's last mark at or before ``position`` (None: no line yet)."""
    cur.execute(
        "SELECT * FROM line_marks WHERE step_job_id = ? AND position <= ?"
        " ORDER BY position DESC LIMIT 1",
        (step_job_id, position),
    )
    mark: Row | None = cur.fetchone()
    return mark
