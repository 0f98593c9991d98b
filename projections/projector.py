"""Where a log line is projected: events become read-model rows.

:func:`apply_batch` applies consecutive notifications and moves the tracking
position in the caller's transaction, so a batch is applied exactly once or
not at all. Applying the same events to an empty model always gives the same
rows (the rebuild/verify guarantee): nothing here reads a clock.

The projection is total: handlers see every value made storable (see
projections/storable.py), and an event that still cannot be applied is
recorded in ``unapplied_events`` in the same transaction while the rest of
the batch is applied. Only a failing database stops a batch (it is retried).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from steptrail.domain.aggregates import Manager, StepJob
from steptrail.domain.deletion import JobDeletion
from steptrail.domain.values import storable_text
from steptrail.domain.vocabulary import MAX_GROUP_DEPTH, PENDING, QUEUED, RUNNING, SKIPPED
from steptrail.projections import fanout, storable
from steptrail.projections.database import Cursor, is_database_failure
from steptrail.projections.deletion import NEXT_JOB_NUMBER, job_deleted
from steptrail.projections.schema import (
    GROUP_COLUMNS,
    LEVEL_COLUMNS,
    LINE_ID_STRIDE,
    MARK_COLUMNS,
    TRACKING_NAME,
    line_id,
)

Positioned = tuple[int, Any]  # (store position, domain event)
MAX_ERROR_CHARS = 2000


class CannotDecode(ValueError):
    """Raised for an :class:`Undecodable` event; its message says why."""


class Undecodable:
    """A stored event the mapper could not turn into a domain event."""

    def __init__(self, originator_id: Any, originator_version: int, topic: str, error: str) -> None:
        self.originator_id = originator_id
        self.originator_version = originator_version
        self.topic = topic
        self.error = error


class _Storable:
    """An event whose attributes read as storable values."""

    def __init__(self, event: Any) -> None:
        self._event = event

    def __getattr__(self, name: str) -> Any:
        raw = getattr(self._event, name)
        if name == "lines_json":
            return storable.lines_json(raw)
        if name in ("originator_id", "timestamp"):
            return raw
        return storable.value(raw)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _ts(event: Any) -> float:
    return float(event.timestamp.timestamp())


class _Batch:
    """Applies one batch of events in the caller's transaction."""

    def __init__(self, cur: Cursor) -> None:
        self.cur = cur

    # jobs

    def _job_arrays(self, job_id: str) -> tuple[list[str], list[str]]:
        self.cur.execute("SELECT step_status, step_job_ids FROM jobs WHERE job_id = ?", (job_id,))
        row = self.cur.fetchone()
        return orjson.loads(row["step_status"]), orjson.loads(row["step_job_ids"])

    def _update_job(self, job_id: str, position: int, ts: float, **columns: Any) -> None:
        sets = ", ".join(f"{c} = ?" for c in columns)
        self.cur.execute(
            f"UPDATE jobs SET {sets}, updated_at = ?, position = ? WHERE job_id = ?",
            (*columns.values(), ts, position, job_id),
        )

    def manager_submitted(self, p: int, e: Any) -> None:
        ts = _ts(e)
        self.cur.execute(
            "INSERT INTO jobs (job_no, job_id, definition, params, status, step_names,"
            " step_status, step_job_ids, created_at, updated_at, position)"
            f" VALUES ({NEXT_JOB_NUMBER}, ?, ?, ?, ?, ?, ?, '[]', ?, ?, ?)",
            (
                p,
                str(e.originator_id),
                e.definition,
                _json(e.params),
                QUEUED,
                _json(e.step_names),
                _json([PENDING] * len(e.step_names)),
                ts,
                ts,
                p,
            ),
        )

    def manager_started(self, p: int, e: Any) -> None:
        self._update_job(
            str(e.originator_id),
            p,
            _ts(e),
            status=RUNNING,
            worker_id=e.worker_id,
            started_at=_ts(e),
            finished_at=None,
        )

    def manager_step_started(self, p: int, e: Any) -> None:
        job_id = str(e.originator_id)
        status, ids = self._job_arrays(job_id)
        status[e.step_index] = RUNNING
        ids.append(e.step_job_id)
        self._update_job(job_id, p, _ts(e), step_status=_json(status), step_job_ids=_json(ids))

    def manager_step_finished(self, p: int, e: Any) -> None:
        job_id = str(e.originator_id)
        status, _ = self._job_arrays(job_id)
        status[e.step_index] = e.status
        self._update_job(job_id, p, _ts(e), step_status=_json(status))

    def manager_cancel_requested(self, p: int, e: Any) -> None:
        self._update_job(str(e.originator_id), p, _ts(e), cancel_requested=1)

    def manager_completed(self, p: int, e: Any) -> None:
        job_id = str(e.originator_id)
        status, _ = self._job_arrays(job_id)
        status = [SKIPPED if s == PENDING else s for s in status]
        self._update_job(
            job_id,
            p,
            _ts(e),
            status=e.status,
            error=e.error,
            finished_at=_ts(e),
            step_status=_json(status),
        )

    def manager_retried(self, p: int, e: Any) -> None:
        job_id = str(e.originator_id)
        status, _ = self._job_arrays(job_id)
        status[e.from_index :] = [PENDING] * (len(status) - e.from_index)
        self._update_job(
            job_id,
            p,
            _ts(e),
            status=QUEUED,
            error=None,
            cancel_requested=0,
            worker_id=None,
            finished_at=None,
            step_status=_json(status),
        )

    # steps and lines

    def step_started(self, p: int, e: Any) -> None:
        ts = _ts(e)
        self.cur.execute(
            "INSERT INTO steps (step_job_id, job_id, step_name, step_index, attempt, status,"
            " worker_id, started_at, heartbeat_at, position)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(e.originator_id),
                e.manager_id,
                e.step_name,
                e.step_index,
                e.attempt,
                RUNNING,
                e.worker_id,
                ts,
                ts,
                p,
            ),
        )

    def step_logged(self, p: int, e: Any) -> None:
        step_job_id = str(e.originator_id)
        counts = {LEVEL_COLUMNS[level]: n for level, n in e.counts.items()}
        sets = ", ".join(f"{c} = {c} + ?" for c in counts)
        # Lines never repeat the step's stored ones: checked here, not by the
        # unique index (a rebuild creates it only at the end), so live and
        # rebuilt agree. A gap (an event before this one could not be applied)
        # is no reason to lose the lines after it.
        updated = self.cur.execute(
            f"UPDATE steps SET last_seq = ?, {sets}, heartbeat_at = ?, position = ?"
            " WHERE step_job_id = ? AND last_seq < ?",
            (e.last_seq, *counts.values(), _ts(e), p, step_job_id, e.first_seq),
        ).rowcount
        if updated != 1:
            raise ValueError(
                f"lines {e.first_seq}-{e.last_seq} repeat stored lines of the step,"
                " or the step was never started"
            )
        inserted = self.cur.insert_lines(step_job_id, p, e.lines_json)
        if inserted > LINE_ID_STRIDE:  # their ids would run into the next event's
            raise ValueError(
                f"the event holds {inserted} lines; at most {LINE_ID_STRIDE} fit one event"
            )
        self._mark_lines(step_job_id)
        self._group_lines(step_job_id, p, e)

    def _group_lines(self, step_job_id: str, p: int, e: Any) -> None:
        """Record the groups the event opens, and extend every group its lines
        fall in (and the groups around those) to its last line."""
        opened = e.groups or []
        self.cur.execute(
            "SELECT seq, parent_seq, depth, last_seq, n_error FROM line_groups"
            " WHERE step_job_id = ? AND is_open = 1",
            (step_job_id,),
        )
        known: dict[int, dict[str, Any]] = {r["seq"]: dict(r) for r in self.cur.fetchall()}
        if not opened and not known:
            return
        for seq, parent, name in opened:
            depth = known[parent]["depth"] + 1 if parent in known else 1
            row = {"seq": seq, "parent_seq": parent, "depth": depth, "last_seq": seq, "n_error": 0}
            known[seq] = row
            self.cur.execute(
                f"INSERT INTO line_groups ({', '.join(GROUP_COLUMNS)})"
                " VALUES (?, ?, ?, ?, ?, ?, 0, 1, ?)",
                (step_job_id, seq, parent, depth, storable_text(str(name)), seq, p),
            )
        # The event's lines are the ids of its position (an indexed range in
        # a rebuild too, which builds the other indexes at the end).
        self.cur.execute(
            "SELECT group_seq, MAX(seq) AS last, SUM(CASE WHEN levelno >= 40 THEN 1 ELSE 0 END)"
            " AS errors FROM lines WHERE line_id BETWEEN ? AND ? AND group_seq IS NOT NULL"
            " GROUP BY group_seq",
            (line_id(p, 0), line_id(p, LINE_ID_STRIDE - 1)),
        )
        for r in self.cur.fetchall():
            group = r["group_seq"]
            for _ in range(MAX_GROUP_DEPTH):  # up through the groups around it
                if group not in known:
                    break
                row = known[group]
                row["last_seq"] = max(row["last_seq"], int(r["last"]))
                row["n_error"] += int(r["errors"])
                group = row["parent_seq"]
        still_open = set(e.open_groups or [])
        for seq, row in known.items():
            self.cur.execute(
                "UPDATE line_groups SET last_seq = ?, n_error = ?, is_open = ?, position = ?"
                " WHERE step_job_id = ? AND seq = ?",
                (row["last_seq"], row["n_error"], int(seq in still_open), p, step_job_id, seq),
            )

    def _mark_lines(self, step_job_id: str) -> None:
        """Keep the step's line-derived columns as this event left them."""
        columns = ", ".join(MARK_COLUMNS)
        self.cur.execute(
            f"INSERT INTO line_marks ({columns}) SELECT {columns} FROM steps WHERE step_job_id = ?",
            (step_job_id,),
        )

    def step_progress(self, p: int, e: Any) -> None:
        # Older steps could store anything here ("3", "ten", NaN): an unknown
        # current counts as 0, an unknown total as none.
        message = e.message
        if not isinstance(message, str):
            message = "" if message is None else _json(message)
        self.cur.execute(
            "UPDATE steps SET progress_current = ?, progress_total = ?, progress_message = ?,"
            " heartbeat_at = ?, position = ? WHERE step_job_id = ?",
            (
                storable.number(e.current) or 0.0,
                storable.number(e.total),
                message,
                _ts(e),
                p,
                str(e.originator_id),
            ),
        )

    def step_completed(self, p: int, e: Any) -> None:
        self.cur.execute(
            "UPDATE steps SET status = ?, error = ?, traceback = ?, finished_at = ?, position = ?"
            " WHERE step_job_id = ?",
            (e.status, e.error, e.traceback, _ts(e), p, str(e.originator_id)),
        )


HANDLERS: dict[type, Callable[[_Batch, int, Any], None]] = {
    Manager.ManagerSubmitted: _Batch.manager_submitted,
    Manager.ManagerStarted: _Batch.manager_started,
    Manager.StepStarted: _Batch.manager_step_started,
    Manager.StepFinished: _Batch.manager_step_finished,
    Manager.CancelRequested: _Batch.manager_cancel_requested,
    Manager.ManagerCompleted: _Batch.manager_completed,
    Manager.ManagerRetried: _Batch.manager_retried,
    StepJob.StepStarted: _Batch.step_started,
    StepJob.StepLogged: fanout.step_logged,
    StepJob.StepProgress: _Batch.step_progress,
    StepJob.StepCompleted: fanout.step_completed,
    StepJob.ChildQueued: fanout.child_queued,
    StepJob.ChildStarted: fanout.child_started,
    JobDeletion.JobDeleted: job_deleted,
}


def _event_type(event: Any) -> str:
    if isinstance(event, Undecodable):
        return event.topic
    return type(event).__qualname__


def _apply(batch: _Batch, position: int, event: Any) -> None:
    if isinstance(event, Undecodable):
        raise CannotDecode(event.error)
    handler = HANDLERS.get(type(event))
    if handler is not None:  # other events (none today) change no rows
        handler(batch, position, _Storable(event))


def _apply_or_record(cur: Cursor, batch: _Batch, position: int, event: Any) -> None:
    """Apply one event, or record why it cannot be applied (and apply nothing of it)."""
    cur.execute("SAVEPOINT event")
    try:
        _apply(batch, position, event)
    except Exception as e:
        if is_database_failure(e):
            raise
        cur.execute("ROLLBACK TO SAVEPOINT event")
        cur.restore_serials()  # numbered as a rebuild numbers them
        why = str(e) if isinstance(e, CannotDecode) else f"{type(e).__name__}: {e}"
        error = storable_text(why)[:MAX_ERROR_CHARS]
        cur.execute(
            "INSERT INTO unapplied_events"
            " (position, originator_id, originator_version, event_type, error)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                position,
                storable_text(str(event.originator_id)),
                int(event.originator_version),
                storable_text(_event_type(event)),
                error,
            ),
        )
    cur.execute("RELEASE SAVEPOINT event")


def _fingerprint(event: Any) -> str:
    return f"{event.originator_id}:{event.originator_version}"


def apply_batch(cur: Cursor, events: Sequence[Positioned]) -> None:
    """Apply events (in position order) and record the last position, with
    the store's identity. The whole batch is tried at once; only when an event
    in it fails is it applied again event by event, each in its own savepoint."""
    batch = _Batch(cur)
    cur.execute("SAVEPOINT batch")
    try:
        for position, event in events:
            _apply(batch, position, event)
    except Exception as e:
        if is_database_failure(e):
            raise
        cur.execute("ROLLBACK TO SAVEPOINT batch")
        cur.restore_serials()
        for position, event in events:
            _apply_or_record(cur, batch, position, event)
    cur.execute("RELEASE SAVEPOINT batch")
    last, last_event = events[-1]
    cur.execute(
        "INSERT INTO tracking (name, position) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        (TRACKING_NAME, last),
    )
    cur.execute(
        "INSERT INTO store_identity (name, first_event, tracked_event) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET tracked_event = excluded.tracked_event",
        (TRACKING_NAME, _fingerprint(events[0][1]), _fingerprint(last_event)),
    )
