"""What changed in the read model after a position: what a stream sends next.

A reader holds a cursor ``after`` (a store position) and asks for the rows
that changed in ``(after, target]``. The answer is bounded: at most
``MAX_STATE_ROWS`` job rows, as many step rows and about ``MAX_LINES`` lines
(never part of an event's lines), so it may stop at ``through < target``; the
next read starts there. Every line with a position in ``(after, through]`` that
matches is in the answer, and nothing beyond ``through`` is. Job and step rows
are their latest state, read in one snapshot and only when that state's
position is in range, so a row never shows more than the lines up to its own
position: a step row at position P has exactly the lines at or before P.

Positions are global and increase with every event; within one step, line
positions increase with ``seq``. A step's mark (projections/marks.py) turns a
position into its last seq with one indexed lookup, so a line cursor is just a
position, for one step or for every step of a job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from steptrail.projections.database import Database, Row
from steptrail.projections.deletion import deletion_json
from steptrail.projections.marks import mark_at
from steptrail.projections.queries import (
    SELECT_LINES,
    job_json,
    line_json,
    running_steps,
    step_json,
)

MAX_STATE_ROWS = 200  # job rows (and step rows) per read
MAX_LINES = 1000  # lines per read (one event is never split, whatever its size)


@dataclass(frozen=True)
class Filters:
    """``job_id``: only this job and its steps. ``step_job_id``: also that
    step's lines. ``all_lines``: also the lines of every step job of ``job_id``."""

    job_id: str | None = None
    step_job_id: str | None = None
    all_lines: bool = False


@dataclass
class Changes:
    """What changed in ``(after, through]``: ``states`` as ``(position, "job" |
    "step", json)`` in position order; ``lines`` in position order (so in seq
    order within a step)."""

    through: int
    states: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)


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


def _cut(rows: list[Row], through: int) -> tuple[list[Row], int]:
    """At most MAX_LINES of ``rows`` (position-ordered, complete up to
    ``through``), cut at an event boundary; returns them and the position up
    to which they are complete. A first event larger than MAX_LINES (the
    recorder bounds its size) goes whole rather than split across reads."""
    if len(rows) <= MAX_LINES:
        return rows, through
    cut = rows[MAX_LINES]["position"]  # the first event not (wholly) kept
    if rows[0]["position"] == cut:
        return [r for r in rows if r["position"] == cut], cut
    return [r for r in rows if r["position"] < cut], cut - 1


def _step_lines(cur: Any, step_job_id: str, after: int, through: int) -> tuple[list[Row], int]:
    """The step's lines in ``(after, through]``, bounded (see :func:`_cut`)."""
    sql = f"{SELECT_LINES} WHERE l.step_job_id = ? AND l.seq > ? AND l.position <= ?"
    mark = mark_at(cur, step_job_id, after)
    params = (step_job_id, mark["last_seq"] if mark else 0, through)
    cur.execute(f"{sql} ORDER BY l.seq LIMIT ?", (*params, MAX_LINES + 1))
    rows = cur.fetchall()
    if len(rows) > MAX_LINES and rows[0]["position"] == rows[MAX_LINES]["position"]:
        cur.execute(f"{sql} AND l.position = ? ORDER BY l.seq", (*params, rows[0]["position"]))
        rows = cur.fetchall()  # the whole first event, however large
    return _cut(rows, through)


def _line_rows(cur: Any, filters: Filters, after: int, through: int) -> tuple[list[Row], int]:
    """The followed lines in ``(after, through]``: of one step, or of each step
    job of the job that changed since ``after`` (a step row's position is its
    last event's, so a step with new lines has moved)."""
    if filters.all_lines:
        cur.execute(
            "SELECT step_job_id FROM steps WHERE job_id = ? AND position > ?",
            (filters.job_id, after),
        )
        step_job_ids = [r["step_job_id"] for r in cur.fetchall()]
    else:
        step_job_ids = [filters.step_job_id] if filters.step_job_id else []
    rows: list[Row] = []
    for step_job_id in step_job_ids:
        step_rows, step_through = _step_lines(cur, step_job_id, after, through)
        rows += step_rows
        through = min(through, step_through)
    rows = [r for r in rows if r["position"] <= through]
    rows.sort(key=lambda r: (r["position"], r["seq"]))
    return _cut(rows, through)


def read_changes(
    db: Database, filters: Filters, after: int, target: int, resumed: bool = False
) -> Changes:
    """Everything matching ``filters`` that changed in ``(after, target]``
    (bounded; see the module docstring).

    ``resumed``: also the job and step rows whose position is ``after`` itself.
    A client resuming after P holds every line at P but maybe not the step row
    that shares P with them (the event that logged them); rows are whole
    states, so sending one again is harmless, while a line is never repeated."""
    states_after = after - 1 if resumed else after
    with db.read() as cur:
        # The snapshot may be ahead of `target`: reading only up to `target`
        # keeps the answer a function of its arguments, so readers can share it.
        jobs, through = _state_rows(cur, "jobs", states_after, target, filters.job_id)
        steps, through = _state_rows(cur, "steps", states_after, through, filters.job_id)
        deleted, through = _state_rows(cur, "deletions", states_after, through, filters.job_id)
        lines, through = _line_rows(cur, filters, after, through)
        jobs = [r for r in jobs if r["position"] <= through]
        running = running_steps(cur, [r["job_id"] for r in jobs])
    states = [(r["position"], "job", job_json(r, running.get(r["job_id"], []))) for r in jobs]
    states += [(r["position"], "step", step_json(r)) for r in steps if r["position"] <= through]
    states += [
        (r["position"], "job", deletion_json(r)) for r in deleted if r["position"] <= through
    ]
    states.sort(key=lambda s: s[0])
    return Changes(through, states, [line_json(r) for r in lines])
