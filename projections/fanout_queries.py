"""Reading children (see domain/fanout.py): a child's identity in its step's
JSON, a parent's roll-up, and a step's children page by page."""

from __future__ import annotations

from typing import Any

from steptrail.domain.vocabulary import STEP_FINAL
from steptrail.projections.database import Cursor, Row
from steptrail.projections.fanout_schema import (
    CHILD_LEVEL_COLUMNS,
    LINES,
    STATUS_COLUMNS,
    TOTAL,
)
from steptrail.projections.isotime import iso
from steptrail.projections.schema import LEVEL_COLUMNS

CHILD_COLUMNS = (
    "step_job_id, map_no, child_index, child_label, attempt, status, worker_id, started_at,"
    f" finished_at, error, last_seq, {', '.join(LEVEL_COLUMNS.values())}, position"
)


def child_json(r: Row) -> dict[str, Any]:
    """A row's place under its parent (all None for a step of the job)."""
    return {
        "parent_step_job_id": r.get("parent_step_job_id"),
        "child_index": r.get("child_index"),
    }


def children_json(r: Row) -> dict[str, Any] | None:
    """A step's roll-up of its children (None: it has none)."""
    total = r.get(TOTAL) or 0
    if not total:
        return None
    by_status = {status: r[column] for status, column in STATUS_COLUMNS.items()}
    ended = sum(n for status, n in by_status.items() if status in STEP_FINAL)
    counts = {level.lower(): r[column] for level, column in CHILD_LEVEL_COLUMNS.items()}
    return {
        "total": total,
        "by_status": by_status,
        "ended": ended,
        "fraction": round(ended / total, 4),
        "counts": {**counts, "total": r[LINES]},
    }


def _duration(r: Row) -> float | None:
    if r["finished_at"] is None or r["status"] == "queued":
        return None
    return round(float(r["finished_at"] - r["started_at"]), 3)


def child_row_json(r: Row) -> dict[str, Any]:
    counts = {level.lower(): r[col] for level, col in LEVEL_COLUMNS.items()}
    return {
        "id": r["step_job_id"],
        "map": r["map_no"],
        "index": r["child_index"],
        "label": r["child_label"],
        "attempt": r["attempt"],
        "status": r["status"],
        "worker_id": r["worker_id"],
        "counts": {**counts, "total": r["last_seq"]},
        "started_at": iso(r["started_at"]) if r["status"] != "queued" else None,
        "finished_at": iso(r["finished_at"]),
        "duration_seconds": _duration(r),
        "error": r["error"],
        "position": r["position"],
    }


def parse_cursor(after: str | None) -> tuple[int, int, int] | None:
    """``map:index:attempt`` of the last child of the previous page."""
    if not after:
        return None
    try:
        m, i, a = (int(part) for part in after.split(":"))
    except ValueError:
        raise ValueError(f"after must be next_after of a previous page, got {after!r}") from None
    return m, i, a


def children_page(
    cur: Cursor,
    step_job_id: str,
    status: str | None,
    after: tuple[int, int, int] | None,
    limit: int,
) -> dict[str, Any]:
    """Children of a step in (map, index, attempt) order; ``total``: how many
    match ``status`` on every page."""
    where = ["parent_step_job_id = ?"]
    params: list[Any] = [step_job_id]
    if status:
        where.append("status = ?")
        params.append(status)
    cur.execute(f"SELECT COUNT(*) AS n FROM steps WHERE {' AND '.join(where)}", params)
    total = int(cur.fetchone()["n"])
    if after is not None:
        where.append("(map_no, child_index, attempt) > (?, ?, ?)")
        params += after
    cur.execute(
        f"SELECT {CHILD_COLUMNS} FROM steps WHERE {' AND '.join(where)}"
        " ORDER BY map_no, child_index, attempt LIMIT ?",
        (*params, limit + 1),
    )
    rows = cur.fetchall()
    page = rows[:limit]
    last = page[-1] if page and len(rows) > limit else None
    return {
        "children": [child_row_json(r) for r in page],
        "next_after": f"{last['map_no']}:{last['child_index']}:{last['attempt']}" if last else None,
        "total": total,
    }
