"""Projecting children (see domain/fanout.py): a child's row in ``steps``,
and its parent's roll-up moved in the same transaction as the child's event,
so at every position the roll-up is the sum over the children's rows (live,
after a restart, after a rebuild)."""

from __future__ import annotations

from typing import Any, Protocol

from steptrail.domain.vocabulary import FAILED, QUEUED, RUNNING
from steptrail.projections.database import Cursor
from steptrail.projections.fanout_schema import (
    CHILD_LEVEL_COLUMNS,
    LINES,
    STATUS_COLUMNS,
    TOTAL,
)


class Batch(Protocol):
    """What these handlers use of the projector's batch."""

    cur: Cursor

    def step_logged(self, p: int, e: Any) -> None: ...

    def step_completed(self, p: int, e: Any) -> None: ...


def _ts(event: Any) -> float:
    return float(event.timestamp.timestamp())


def _status_column(status: str) -> str:
    return STATUS_COLUMNS.get(status, STATUS_COLUMNS[FAILED])


def _child(cur: Cursor, step_job_id: str) -> tuple[str | None, str | None]:
    """(its parent, its status) of a step row; (None, None): no such row."""
    cur.execute(
        "SELECT parent_step_job_id, status FROM steps WHERE step_job_id = ?", (step_job_id,)
    )
    row = cur.fetchone()
    return (row["parent_step_job_id"], row["status"]) if row else (None, None)


def _roll_up(cur: Cursor, parent: str, p: int, changes: dict[str, int]) -> None:
    sets = ", ".join(f"{column} = {column} + ?" for column in changes)
    cur.execute(
        f"UPDATE steps SET {sets}, position = ? WHERE step_job_id = ?",
        (*changes.values(), p, parent),
    )


def _moved(cur: Cursor, parent: str, p: int, old: str, new: str) -> None:
    changes = {_status_column(old): -1}
    changes[_status_column(new)] = changes.get(_status_column(new), 0) + 1
    _roll_up(cur, parent, p, changes)


def child_queued(batch: Batch, p: int, e: Any) -> None:
    ts = _ts(e)
    batch.cur.execute(
        "INSERT INTO steps (step_job_id, job_id, step_name, step_index, attempt, status,"
        " worker_id, started_at, heartbeat_at, position, parent_step_job_id, map_no,"
        " child_index, child_label) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            str(e.originator_id),
            e.manager_id,
            e.step_name,
            e.step_index,
            e.attempt,
            QUEUED,
            None,
            ts,
            ts,
            p,
            e.parent_step_job_id,
            e.map_no,
            e.child_index,
            e.label,
        ),
    )
    _roll_up(batch.cur, e.parent_step_job_id, p, {TOTAL: 1, STATUS_COLUMNS[QUEUED]: 1})


def child_started(batch: Batch, p: int, e: Any) -> None:
    child_id = str(e.originator_id)
    parent, old = _child(batch.cur, child_id)
    if parent is None or old is None:
        raise ValueError("a child started that was never queued")
    ts = _ts(e)
    batch.cur.execute(
        "UPDATE steps SET status = ?, worker_id = ?, started_at = ?, heartbeat_at = ?,"
        " position = ? WHERE step_job_id = ?",
        (RUNNING, e.worker_id, ts, ts, p, child_id),
    )
    _moved(batch.cur, parent, p, old, RUNNING)


def step_logged(batch: Batch, p: int, e: Any) -> None:
    """A step's lines; a child's also count in its parent's roll-up."""
    batch.step_logged(p, e)
    parent, _ = _child(batch.cur, str(e.originator_id))
    if parent is not None:
        changes = {CHILD_LEVEL_COLUMNS[level]: n for level, n in e.counts.items()}
        changes[LINES] = e.last_seq - e.first_seq + 1
        _roll_up(batch.cur, parent, p, changes)


def step_completed(batch: Batch, p: int, e: Any) -> None:
    """A step's end; a child's moves it in its parent's roll-up."""
    parent, old = _child(batch.cur, str(e.originator_id))
    batch.step_completed(p, e)
    if parent is not None and old is not None:
        _moved(batch.cur, parent, p, old, e.status)
