"""The read model's side of deleting a job (see domain/deletion.py).

Projecting a ``JobDeleted`` tombstone deletes the job's rows (job, steps,
lines, line marks, its unapplied events) and records the deletion in
``deletions``, from the tombstone's own values: a live model and a rebuild,
which never sees the job's events, end with the same rows.

Job numbers must survive a rebuild. A job's number is one more than the
largest number of any job submitted before it, deleted or not
(:data:`NEXT_JOB_NUMBER`): the live model knows every earlier job as a row or
a deletion. A rebuild does not meet a deleted job's submission, and its
tombstone comes after the later jobs' submissions, so :func:`prefill` records
every tombstone of the store before a rebuild replays anything; projecting
the tombstone again later finds its record already there.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.utils import get_topic

from steptrail.domain.deletion import JobDeletion
from steptrail.domain.store import JobStore
from steptrail.projections.database import Cursor, Database
from steptrail.projections.isotime import iso
from steptrail.projections.schema import TRACKING_NAME

PREFILL_PAGE = 500

# The number of the job submitted at position ?: numbers follow submission
# order, so the deletion submitted last before it has the largest number.
NEXT_JOB_NUMBER = (
    "(SELECT MAX(n) + 1 FROM (SELECT COALESCE(MAX(job_no), 0) AS n FROM jobs"
    " UNION ALL SELECT COALESCE((SELECT number FROM deletions WHERE submitted_position < ?"
    " ORDER BY submitted_position DESC LIMIT 1), 0)) AS known)"
)

_COLUMNS = (
    "job_id",
    "number",
    "definition",
    "status",
    "submitted_at",
    "submitted_position",
    "deleted_at",
    "deleted_by",
    "position",
)


def _record(cur: Cursor, position: int, e: Any) -> None:
    marks = ", ".join("?" * len(_COLUMNS))
    cur.execute(
        f"INSERT INTO deletions ({', '.join(_COLUMNS)}) VALUES ({marks})"
        " ON CONFLICT (job_id) DO NOTHING",
        (
            str(e.job_id),
            int(e.number),
            e.definition,
            e.status,
            e.submitted_at,
            int(e.submitted_position),
            float(e.timestamp.timestamp()),
            e.deleted_by,
            position,
        ),
    )


def job_deleted(batch: Any, position: int, e: Any) -> None:
    """The projector's handler for ``JobDeletion.JobDeleted``."""
    cur: Cursor = batch.cur
    job_id = str(e.job_id)
    cur.execute(  # children's too: they are step jobs of the job
        "DELETE FROM unapplied_events WHERE originator_id IN"
        " (SELECT step_job_id FROM steps WHERE job_id = ?)",
        (job_id,),
    )
    for table in ("lines", "line_marks", "line_groups"):
        cur.execute(
            f"DELETE FROM {table} WHERE step_job_id IN"
            " (SELECT step_job_id FROM steps WHERE job_id = ?)",
            (job_id,),
        )
    cur.execute("DELETE FROM steps WHERE job_id = ?", (job_id,))
    cur.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
    ids = [job_id, *(str(s) for s in e.step_job_ids)]
    marks = ", ".join("?" * len(ids))
    cur.execute(f"DELETE FROM unapplied_events WHERE originator_id IN ({marks})", ids)
    _record(cur, position, e)


def prefill(store: JobStore, db: Database, after: int, until: int | None) -> None:
    """Record the tombstones stored in ``(after, until]`` in a model that is
    at position ``after`` and about to catch up (see the module docstring)."""
    topic = get_topic(JobDeletion.JobDeleted)
    while True:
        found = store.recorder.select_notifications(
            after, PREFILL_PAGE, stop=until, topics=[topic], inclusive_of_start=False
        )
        if not found:
            return
        with db.write() as cur:
            for n in found:
                _record(cur, n.id, store.mapper.to_domain_event(n))
        after = found[-1].id


def deletion_json(r: dict[str, Any]) -> dict[str, Any]:
    """A deletion record; as a stream ``job`` message its status is ``deleted``."""
    return {
        "id": r["job_id"],
        "number": r["number"],
        "definition": r["definition"],
        "status": "deleted",
        "status_when_deleted": r["status"],
        "created_at": iso(r["submitted_at"]),
        "deleted_at": iso(r["deleted_at"]),
        "deleted_by": r["deleted_by"],
        "position": r["position"],
    }


# reads


def job_row(db: Database, job_id: str) -> dict[str, Any] | None:
    with db.read() as cur:
        cur.execute(
            "SELECT job_id, job_no, status, created_at FROM jobs WHERE job_id = ?", (job_id,)
        )
        row: dict[str, Any] | None = cur.fetchone()
        return row


def ended_before(db: Database, finished_before: float, limit: int) -> list[str]:
    """Ended jobs that finished before ``finished_before`` (epoch seconds), oldest first."""
    with db.read() as cur:
        cur.execute(
            "SELECT job_id FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled')"
            " AND finished_at < ? ORDER BY job_no LIMIT ?",
            (finished_before, limit),
        )
        return [r["job_id"] for r in cur.fetchall()]


def get_deletion(db: Database, job_id: str) -> dict[str, Any] | None:
    with db.read() as cur:
        cur.execute("SELECT * FROM deletions WHERE job_id = ?", (job_id,))
        row = cur.fetchone()
    return deletion_json(row) if row else None


def list_deletions(db: Database, limit: int, before: int | None) -> dict[str, Any]:
    """Deletion records, the latest first; ``next_before`` pages."""
    with db.read() as cur:
        cur.execute("SELECT position FROM tracking WHERE name = ?", (TRACKING_NAME,))
        tracked = cur.fetchone()
        sql, params = "SELECT * FROM deletions", []
        if before is not None:
            sql += " WHERE position < ?"
            params.append(before)
        cur.execute(f"{sql} ORDER BY position DESC LIMIT ?", (*params, limit + 1))
        rows = cur.fetchall()
    page = rows[:limit]
    return {
        "deletions": [deletion_json(r) for r in page],
        "next_before": page[-1]["position"] if len(rows) > limit else None,
        "position": int(tracked["position"]) if tracked else 0,
    }
