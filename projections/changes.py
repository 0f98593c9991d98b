"""What changed in the read model after a position: what a stream sends next.

A reader holds a cursor ``after`` (a store position) and asks for the rows
that changed in ``(after, target]``. The answer is bounded: at most
``MAX_STATE_ROWS`` job rows, as many step rows and ``MAX_LINES`` lines (never
part of an event's lines), so it may stop at ``through < target``; the next
read starts there. Everything with a position ``<= through`` that matches is
in the answer, and nothing beyond ``through`` is, except that job and step rows
are their latest state (rows only move forward, so a newer state is harmless).

Positions are global and increase with every event; within one step, line
positions increase with ``seq``. That is what lets a step's line cursor be a
``seq`` (see :func:`seq_at`) and a page of lines end at an event boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from projections.database import Database, Row
from projections.queries import SELECT_LINES, job_json, line_json, running_steps, step_json

MAX_STATE_ROWS = 200  # job rows (and step rows) per read
MAX_LINES = 1000  # lines per read: one `logs` message of at most this many lines


@dataclass(frozen=True)
class Filters:
    """``job_id``: only this job and its steps. ``step_job_id``: also its lines."""

    job_id: str | None = None
    step_job_id: str | None = None


@dataclass
class Changes:
    """Rows changed in ``(after, through]``; ``states`` in position order as
    ``(position, "job" | "step", json)``; ``lines`` in seq order."""

    through: int
    states: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)


def seq_at(db: Database, step_job_id: str, position: int) -> int:
    """The step's last seq at ``position``: where its line cursor starts."""
    with db.read() as cur:
        cur.execute(
            "SELECT COALESCE(MAX(seq), 0) AS seq FROM lines"
            " WHERE step_job_id = ? AND position <= ?",
            (step_job_id, position),
        )
        return int(cur.fetchone()["seq"])


def _state_rows(
    cur: Any, table: str, after: int, through: int, job_id: str | None
) -> tuple[list[Row], int]:
    """Rows of ``table`` changed in ``(after, through]``, at most MAX_STATE_ROWS;
    returns them and the position up to which the list is complete."""
    sql = f"SELECT * FROM {table} WHERE position > ? AND position <= ?"
    params: list[Any] = [after, through]
    if job_id is not None:
        sql += " AND job_id = ?"
        params.append(job_id)
    cur.execute(f"{sql} ORDER BY position LIMIT ?", (*params, MAX_STATE_ROWS + 1))
    rows = cur.fetchall()
    if len(rows) > MAX_STATE_ROWS:
        rows = rows[:MAX_STATE_ROWS]
        through = rows[-1]["position"]
    return rows, through


def _line_rows(cur: Any, step_job_id: str, after_seq: int, through: int) -> tuple[list[Row], int]:
    """The step's next lines up to ``through``, cut at an event boundary; returns
    them and the position up to which they are complete."""
    sql = f"{SELECT_LINES} WHERE l.step_job_id = ? AND l.seq > ? AND l.position <= ? ORDER BY l.seq"
    cur.execute(f"{sql} LIMIT ?", (step_job_id, after_seq, through, MAX_LINES + 1))
    rows = cur.fetchall()
    if len(rows) <= MAX_LINES:
        return rows, through
    cut = rows[MAX_LINES]["position"]  # the first event not (wholly) in this read
    if rows[0]["position"] == cut:
        # One event holds more than MAX_LINES lines (the recorder bounds its
        # size): send it whole rather than split it across two positions.
        cur.execute(sql, (step_job_id, after_seq, cut))
        return cur.fetchall(), cut
    return [r for r in rows if r["position"] < cut], cut - 1


def read_changes(
    db: Database, filters: Filters, after: int, after_seq: int, target: int
) -> Changes:
    """Everything matching ``filters`` that changed in ``(after, target]``
    (bounded; see the module docstring). ``after_seq`` is the step's line
    cursor, ``seq_at(step, after)`` on the first read."""
    with db.read() as cur:
        # The snapshot may be ahead of `target`: reading only up to `target`
        # keeps the answer a function of its arguments, so readers can share it.
        jobs, through = _state_rows(cur, "jobs", after, target, filters.job_id)
        steps, through = _state_rows(cur, "steps", after, through, filters.job_id)
        lines: list[Row] = []
        if filters.step_job_id is not None:
            lines, through = _line_rows(cur, filters.step_job_id, after_seq, through)
        jobs = [r for r in jobs if r["position"] <= through]
        running = running_steps(cur, [r["job_id"] for r in jobs])
    states = [(r["position"], "job", job_json(r, running.get(r["job_id"], []))) for r in jobs]
    states += [(r["position"], "step", step_json(r)) for r in steps if r["position"] <= through]
    states.sort(key=lambda s: s[0])
    return Changes(through, states, [line_json(r) for r in lines])
