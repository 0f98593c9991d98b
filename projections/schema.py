"""Read-model tables. Every row records the store position of the last event
that changed it; ``tracking`` holds the position the whole model reflects and
is written in the same transaction as the rows, with ``store_identity`` (which
store those positions belong to) and ``unapplied_events`` (stored events the
projector could not turn into rows)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from steptrail.projections.database import Cursor

TRACKING_NAME = "readmodel"
LEVEL_COLUMNS = {
    "DEBUG": "n_debug",
    "INFO": "n_info",
    "WARNING": "n_warning",
    "ERROR": "n_error",
    "CRITICAL": "n_critical",
}
# Serial columns: numbers users see (job_no) or order by (line_id).
SERIALS = (("jobs", "job_no"), ("lines", "line_id"))
LEVEL_NUMBERS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
LINE_COLUMNS = ("step_job_id", "seq", "ts", "levelno", "logger", "message", "fields", "position")
# A step row's line-derived columns, as a StepLogged event leaves them.
MARK_COLUMNS = ("step_job_id", "position", "last_seq", *LEVEL_COLUMNS.values(), "heartbeat_at")


def levelno_sql(level: str) -> str:
    """SQL mapping a level name to its number (LEVEL_NUMBERS, in SQL)."""
    whens = " ".join(f"WHEN '{name}' THEN {n}" for name, n in LEVEL_NUMBERS.items())
    return f"CASE {level} {whens} END"


_SERIAL = {"sqlite": "INTEGER PRIMARY KEY", "postgres": "BIGSERIAL PRIMARY KEY"}
_REAL = {"sqlite": "REAL", "postgres": "DOUBLE PRECISION"}
_INT = {"sqlite": "INTEGER", "postgres": "BIGINT"}


def statements(dialect: str) -> list[str]:
    serial, real, int_ = _SERIAL[dialect], _REAL[dialect], _INT[dialect]
    counts = ", ".join(f"{c} {int_} NOT NULL DEFAULT 0" for c in LEVEL_COLUMNS.values())
    return [
        f"CREATE TABLE IF NOT EXISTS tracking (name TEXT PRIMARY KEY, position {int_} NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS jobs (
            job_no {serial},
            job_id TEXT NOT NULL UNIQUE,
            definition TEXT NOT NULL,
            params TEXT NOT NULL,
            status TEXT NOT NULL,
            step_names TEXT NOT NULL,
            step_status TEXT NOT NULL,
            step_job_ids TEXT NOT NULL,
            cancel_requested {int_} NOT NULL DEFAULT 0,
            worker_id TEXT,
            error TEXT,
            created_at {real} NOT NULL,
            started_at {real},
            finished_at {real},
            updated_at {real} NOT NULL,
            position {int_} NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, job_no)",
        "CREATE INDEX IF NOT EXISTS jobs_by_position ON jobs (position)",
        f"""CREATE TABLE IF NOT EXISTS steps (
            step_job_id TEXT PRIMARY KEY,
            job_id TEXT NOT NULL,
            step_name TEXT NOT NULL,
            step_index {int_} NOT NULL,
            attempt {int_} NOT NULL,
            status TEXT NOT NULL,
            worker_id TEXT,
            progress_current {real} NOT NULL DEFAULT 0,
            progress_total {real},
            progress_message TEXT NOT NULL DEFAULT '',
            started_at {real} NOT NULL,
            finished_at {real},
            heartbeat_at {real} NOT NULL,
            error TEXT,
            traceback TEXT,
            last_seq {int_} NOT NULL DEFAULT 0,
            {counts},
            position {int_} NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS steps_by_job ON steps (job_id, step_index, attempt)",
        "CREATE INDEX IF NOT EXISTS steps_by_status ON steps (status)",
        "CREATE INDEX IF NOT EXISTS steps_by_position ON steps (position)",
        # One row per StepLogged: the step's line cursor and counts at that
        # position, so "the step at position P" is one indexed lookup however
        # many lines it has (streams resuming, time travel).
        f"""CREATE TABLE IF NOT EXISTS line_marks (
            step_job_id TEXT NOT NULL,
            position {int_} NOT NULL,
            last_seq {int_} NOT NULL,
            {counts},
            heartbeat_at {real} NOT NULL,
            PRIMARY KEY (step_job_id, position))""",
        f"""CREATE TABLE IF NOT EXISTS lines (
            line_id {serial},
            step_job_id TEXT NOT NULL,
            seq {int_} NOT NULL,
            ts {real} NOT NULL,
            levelno {int_} NOT NULL,
            logger TEXT NOT NULL,
            message TEXT NOT NULL,
            fields TEXT,
            position {int_} NOT NULL)""",
        "CREATE UNIQUE INDEX IF NOT EXISTS lines_by_step ON lines (step_job_id, seq)",
        # The first stored event and the one at the tracked position, as
        # "originator_id:version": another store (or an older copy of this
        # one) does not hold the same events at those positions.
        """CREATE TABLE IF NOT EXISTS store_identity (
            name TEXT PRIMARY KEY,
            first_event TEXT NOT NULL,
            tracked_event TEXT NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS unapplied_events (
            position {int_} PRIMARY KEY,
            originator_id TEXT NOT NULL,
            originator_version {int_} NOT NULL,
            event_type TEXT NOT NULL,
            error TEXT NOT NULL)""",
        # What stays of a deleted job (projections/deletion.py).
        f"""CREATE TABLE IF NOT EXISTS deletions (
            job_id TEXT PRIMARY KEY,
            number {int_} NOT NULL,
            definition TEXT NOT NULL,
            status TEXT NOT NULL,
            submitted_at {real},
            submitted_position {int_} NOT NULL,
            deleted_at {real} NOT NULL,
            deleted_by TEXT NOT NULL,
            position {int_} NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS deletions_by_submission ON deletions (submitted_position)",
        "CREATE INDEX IF NOT EXISTS deletions_by_position ON deletions (position)",
    ]


def create_tables(cur: Cursor, dialect: str) -> None:
    for statement in statements(dialect):
        cur.execute(statement)
    # The tracking row exists from the start, so competing runners lock one row.
    cur.execute(
        "INSERT INTO tracking (name, position) VALUES (?, 0) ON CONFLICT DO NOTHING",
        (TRACKING_NAME,),
    )


def drop_tables(cur: Cursor) -> None:
    for table in (
        "deletions",
        "unapplied_events",
        "store_identity",
        "line_marks",
        "lines",
        "steps",
        "jobs",
        "tracking",
    ):
        cur.execute(f"DROP TABLE IF EXISTS {table}")
