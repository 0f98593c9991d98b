"""The read side: every answer the API and the workers get, each stating the
position of the read model it reflects."""

from __future__ import annotations

from typing import Any

import orjson

from steptrail.domain.vocabulary import JOB_STATUSES as JOB_STATUSES  # the API's choices
from steptrail.domain.vocabulary import LEVEL_NAMES, QUEUED, RUNNING, STEP_FINAL
from steptrail.projections.database import Cursor, Database, Row
from steptrail.projections.fanout_queries import (
    child_json,
    children_json,
    children_page,
    parse_cursor,
)
from steptrail.projections.isotime import iso
from steptrail.projections.notifier import PositionNotifier
from steptrail.projections.readmodel import tracking_position
from steptrail.projections.schema import LEVEL_COLUMNS
from steptrail.projections.storable import number

# Lines with every context field (what line_json renders), for any WHERE clause.
SELECT_LINES = (
    "SELECT l.line_id, l.step_job_id, l.seq, l.ts, l.levelno, l.logger, l.message, l.fields,"
    " l.group_seq, l.position, s.job_id, s.step_name, s.step_index, s.attempt,"
    " s.parent_step_job_id, s.child_index"
    " FROM lines l JOIN steps s USING (step_job_id)"
)


def _duration(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 3)


def line_json(r: Row) -> dict[str, Any]:
    return {
        "job_id": r["job_id"],
        "step_job_id": r["step_job_id"],
        "step_name": r["step_name"],
        "step_index": r["step_index"],
        "attempt": r["attempt"],
        "seq": r["seq"],
        "level": LEVEL_NAMES[r["levelno"]],
        "message": r["message"],
        "timestamp": iso(r["ts"]),
        "logger": r["logger"],
        "fields": orjson.loads(r["fields"]) if r["fields"] else {},
        "group": r["group_seq"],
        "position": r["position"],
        **child_json(r),
    }


def group_json(r: Row) -> dict[str, Any]:
    """A group of a step's lines: ``seq`` is its opening line's, ``lines`` how
    many lines it holds after that one (``last_seq - seq``)."""
    return {
        "seq": r["seq"],
        "parent": r["parent_seq"],
        "depth": r["depth"],
        "name": r["name"],
        "last_seq": r["last_seq"],
        "lines": r["last_seq"] - r["seq"],
        "errors": r["n_error"],
        "open": bool(r["is_open"]),
    }


def _progress(r: Row) -> tuple[float, float | None]:
    """(current, total) of a step row; rows written by older code may hold
    text or NaN there, read as unknown."""
    return number(r["progress_current"]) or 0.0, number(r["progress_total"])


def step_json(r: Row) -> dict[str, Any]:
    counts = {level.lower(): r[col] for level, col in LEVEL_COLUMNS.items()}
    current, total = _progress(r)
    children = children_json(r)
    if children is not None and total is None:  # a fan-out's progress: its children's
        current, total = children["ended"], children["total"]
    return {
        "id": r["step_job_id"],
        "job_id": r["job_id"],
        "name": r["step_name"],
        "index": r["step_index"],
        "attempt": r["attempt"],
        "status": r["status"],
        "worker_id": r["worker_id"],
        "progress": {
            "current": current,
            "total": total,
            "message": r["progress_message"],
            "fraction": min(1.0, current / total) if total else None,
        },
        "counts": {**counts, "total": r["last_seq"]},
        "last_seq": r["last_seq"],
        "started_at": iso(r["started_at"]),
        "finished_at": iso(r["finished_at"]),
        "duration_seconds": _duration(r["started_at"], r["finished_at"]),
        "heartbeat_at": iso(r["heartbeat_at"]),
        "error": r["error"],
        "traceback": r["traceback"],
        "position": r["position"],
        **child_json(r),
        "children": children,
    }


# A step row as a step that has no step job (yet) would have it.
_NOT_STARTED: Row = {
    "step_job_id": None,
    "attempt": 0,
    "worker_id": None,
    "progress_current": 0,
    "progress_total": None,
    "progress_message": "",
    "last_seq": 0,
    **dict.fromkeys(LEVEL_COLUMNS.values(), 0),
    "started_at": None,
    "finished_at": None,
    "heartbeat_at": None,
    "error": None,
    "traceback": None,
    "position": None,
}


def placeholder_step_json(job_id: str, name: str, index: int, status: str) -> dict[str, Any]:
    """A step that has no step job (yet), in the shape of :func:`step_json`."""
    return step_json(
        {**_NOT_STARTED, "job_id": job_id, "step_name": name, "step_index": index, "status": status}
    )


def job_json(r: Row, running_steps: list[Row]) -> dict[str, Any]:
    names = orjson.loads(r["step_names"])
    status = orjson.loads(r["step_status"])
    done = sum(s in STEP_FINAL for s in status)
    progress = [_progress(s) for s in running_steps]
    fraction_running = sum(min(1.0, current / total) for current, total in progress if total)
    steps_total = len(names)
    return {
        "id": r["job_id"],
        "number": r["job_no"],
        "definition": r["definition"],
        "params": orjson.loads(r["params"]),
        "status": r["status"],
        "error": r["error"],
        "cancel_requested": bool(r["cancel_requested"]),
        "worker_id": r["worker_id"],
        "step_names": names,
        "step_status": status,
        "step_job_ids": orjson.loads(r["step_job_ids"]),
        "progress": {
            "steps_done": done,
            "steps_total": steps_total,
            "fraction": round((done + fraction_running) / steps_total, 4) if steps_total else 1.0,
        },
        "created_at": iso(r["created_at"]),
        "started_at": iso(r["started_at"]),
        "finished_at": iso(r["finished_at"]),
        "duration_seconds": _duration(r["started_at"], r["finished_at"]),
        "position": r["position"],
    }


def running_steps(cur: Cursor, job_ids: list[str]) -> dict[str, list[Row]]:
    """The running step rows of these jobs, by job (for the jobs' progress)."""
    if not job_ids:
        return {}
    marks = ", ".join("?" * len(job_ids))
    cur.execute(
        f"SELECT * FROM steps WHERE status = ? AND job_id IN ({marks})"
        " AND parent_step_job_id IS NULL",
        (RUNNING, *job_ids),
    )
    by_job: dict[str, list[Row]] = {}
    for s in cur.fetchall():
        by_job.setdefault(s["job_id"], []).append(s)
    return by_job


def _find_job(find: str, where: list[str], params: list[Any]) -> None:
    """A job by number (``12`` or ``#12``) or by the start of its id."""
    number = find.strip().removeprefix("#")
    if number.isdigit() and len(number) < 19:
        where.append("job_no = ?")
        params.append(int(number))
    else:
        prefix = find.strip().lower()
        where.append("substr(job_id, 1, ?) = ?")
        params += [len(prefix), prefix]


def _step_row(cur: Cursor, step_job_id: str) -> Row | None:
    cur.execute("SELECT * FROM steps WHERE step_job_id = ?", (step_job_id,))
    row: Row | None = cur.fetchone()
    return row


class Queries:
    def __init__(self, db: Database, notifier: PositionNotifier) -> None:
        self.db = db
        self.notifier = notifier

    def unapplied_events(self, limit: int) -> dict[str, Any]:
        """How many stored events the projector could not apply, the latest first."""
        with self.db.read() as cur:
            cur.execute("SELECT COUNT(*) AS n FROM unapplied_events")
            count = int(cur.fetchone()["n"])
            cur.execute("SELECT * FROM unapplied_events ORDER BY position DESC LIMIT ?", (limit,))
            latest = cur.fetchall()
        return {"count": count, "latest": latest}

    # jobs

    def list_jobs(
        self,
        status: str | None,
        limit: int,
        before: int | None,
        definition: str | None = None,
        find: str | None = None,
    ) -> dict[str, Any]:
        """Newest first; ``total`` counts every job the filters match (all pages)."""
        where: list[str] = []
        params: list[Any] = []
        if status:
            where.append("status = ?")
            params.append(status)
        if definition:
            where.append("definition = ?")
            params.append(definition)
        if find:
            _find_job(find, where, params)
        matching = " WHERE " + " AND ".join(where) if where else ""
        if before is not None:
            where.append("job_no < ?")
            params.append(before)
        sql = "SELECT * FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY job_no DESC LIMIT ?"
        with self.db.read() as cur:
            position = tracking_position(cur)
            cur.execute(sql, (*params, limit + 1))
            rows = cur.fetchall()
            page = rows[:limit]
            running = running_steps(cur, [r["job_id"] for r in page])
            cur.execute(
                f"SELECT COUNT(*) AS n FROM jobs{matching}",
                params[: len(params) - (before is not None)],
            )
            total = int(cur.fetchone()["n"])
        return {
            "jobs": [job_json(r, running.get(r["job_id"], [])) for r in page],
            "next_before": page[-1]["job_no"] if len(rows) > limit else None,
            "total": total,
            "position": position,
        }

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        with self.db.read() as cur:
            position = tracking_position(cur)
            cur.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute(
                "SELECT * FROM steps WHERE job_id = ? AND parent_step_job_id IS NULL"
                " ORDER BY step_index, attempt",
                (job_id,),
            )
            steps = cur.fetchall()
        job = job_json(row, [s for s in steps if s["status"] == RUNNING])
        started = {s["step_index"] for s in steps}
        placeholders = [
            placeholder_step_json(job_id, name, i, job["step_status"][i])
            for i, name in enumerate(job["step_names"])
            if i not in started
        ]
        job["steps"] = sorted(
            [step_json(s) for s in steps] + placeholders, key=lambda s: (s["index"], s["attempt"])
        )
        job["position"] = position
        return job

    def get_step(self, step_job_id: str) -> dict[str, Any] | None:
        with self.db.read() as cur:
            position = tracking_position(cur)
            row = _step_row(cur, step_job_id)
        if row is None:
            return None
        return {**step_json(row), "position": position}

    def step_children(
        self, step_job_id: str, status: str | None, after: str | None, limit: int
    ) -> dict[str, Any] | None:
        """A page of a step's children, with the step and its roll-up."""
        cursor = parse_cursor(after)
        with self.db.read() as cur:
            position = tracking_position(cur)
            row = _step_row(cur, step_job_id)
            if row is None:
                return None
            page = children_page(cur, step_job_id, status, cursor, limit)
        return {"step": step_json(row), **page, "position": position}

    # lines

    def step_logs(
        self,
        step_job_id: str,
        after_seq: int,
        limit: int,
        min_level: int | None,
        q: str | None,
    ) -> dict[str, Any] | None:
        where = ["l.step_job_id = ?", "l.seq > ?"]
        params: list[Any] = [step_job_id, after_seq]
        self.filter_lines(where, params, min_level, q)
        with self.db.read() as cur:
            position = tracking_position(cur)
            step = _step_row(cur, step_job_id)
            if step is None:
                return None
            cur.execute(
                f"{SELECT_LINES} WHERE {' AND '.join(where)} ORDER BY l.seq LIMIT ?",
                (*params, limit),
            )
            lines = [line_json(r) for r in cur.fetchall()]
        return {
            "step": step_json(step),
            "lines": lines,
            "next_after_seq": lines[-1]["seq"] if lines else after_seq,
            "position": position,
        }

    def step_groups(self, step_job_id: str) -> dict[str, Any] | None:
        """Every group of a step's lines, in seq order: enough to fold a
        100,000-line step without reading its lines."""
        with self.db.read() as cur:
            position = tracking_position(cur)
            cur.execute("SELECT 1 AS x FROM steps WHERE step_job_id = ?", (step_job_id,))
            if cur.fetchone() is None:
                return None
            cur.execute(
                "SELECT * FROM line_groups WHERE step_job_id = ? ORDER BY seq", (step_job_id,)
            )
            groups = [group_json(r) for r in cur.fetchall()]
        return {"groups": groups, "position": position}

    def filter_lines(
        self, where: list[str], params: list[Any], min_level: int | None, q: str | None
    ) -> None:
        if min_level:
            where.append("l.levelno >= ?")
            params.append(min_level)
        if q:
            where.append(self.db.dialect.contains("l.message"))
            params.append(q)

    def logs(
        self,
        *,
        job_id: str | None,
        step_job_id: str | None,
        step_name: str | None,
        min_level: int | None,
        q: str | None,
        since: float | None,
        until: float | None,
        cursor: int | None,
        limit: int,
        descending: bool,
        parent_step_job_id: str | None = None,
    ) -> dict[str, Any]:
        """All lines, in store order (``line_id``), with every context field."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("s.job_id", job_id),
            ("l.step_job_id", step_job_id),
            ("s.step_name", step_name),
            ("s.parent_step_job_id", parent_step_job_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        self.filter_lines(where, params, min_level, q)
        if since is not None:
            where.append("l.ts >= ?")
            params.append(since)
        if until is not None:
            where.append("l.ts < ?")
            params.append(until)
        if cursor is not None:
            where.append("l.line_id < ?" if descending else "l.line_id > ?")
            params.append(cursor)
        sql = SELECT_LINES
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY l.line_id {'DESC' if descending else 'ASC'} LIMIT ?"
        with self.db.read() as cur:
            position = tracking_position(cur)
            cur.execute(sql, (*params, limit + 1))
            rows = cur.fetchall()
        page = rows[:limit]
        return {
            "lines": [line_json(r) for r in page],
            "next_cursor": str(page[-1]["line_id"]) if len(rows) > limit else None,
            "position": position,
        }

    # the orchestrator's view (WorkSource)

    def queued_job_ids(self, limit: int) -> list[str]:
        with self.db.read() as cur:
            cur.execute(
                "SELECT job_id FROM jobs WHERE status = ? ORDER BY job_no LIMIT ?", (QUEUED, limit)
            )
            return [r["job_id"] for r in cur.fetchall()]

    def cancel_requested_job_ids(self) -> list[str]:
        with self.db.read() as cur:
            cur.execute(
                "SELECT job_id FROM jobs WHERE status = ? AND cancel_requested = 1", (RUNNING,)
            )
            return [r["job_id"] for r in cur.fetchall()]

    def stale_running(self, heartbeat_before: float) -> list[tuple[str, str | None]]:
        """Running steps without a recent heartbeat, and running jobs with no
        running step that have not changed recently (a worker died between steps)."""
        with self.db.read() as cur:
            cur.execute(
                "SELECT job_id, step_job_id FROM steps WHERE status = ? AND heartbeat_at < ?",
                (RUNNING, heartbeat_before),
            )
            stale: list[tuple[str, str | None]] = [
                (r["job_id"], r["step_job_id"]) for r in cur.fetchall()
            ]
            cur.execute(
                "SELECT job_id FROM jobs j WHERE status = ? AND updated_at < ?"
                " AND NOT EXISTS (SELECT 1 FROM steps s"
                " WHERE s.job_id = j.job_id AND s.status = ?)",
                (RUNNING, heartbeat_before, RUNNING),
            )
            stale += [(r["job_id"], None) for r in cur.fetchall()]
        return stale

    def wait_for_change(self, timeout: float) -> None:
        self.notifier.wait(self.notifier.position, timeout)
