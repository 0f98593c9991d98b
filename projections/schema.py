"""Read-model tables. Every row records the store position of the last event
that changed it; ``tracking`` holds the position the whole model reflects and
is written in the same transaction as the rows, with ``store_identity`` (which
store those positions belong to) and ``unapplied_events`` (stored events the
projector could not turn into rows)."""

from __future__ import annotations

from steptrail.domain.vocabulary import LEVEL_NUMBERS as LEVEL_NUMBERS  # read by api/params.py
from steptrail.domain.vocabulary import LEVELS, LINE_FIELDS, LineField
from steptrail.projections.dialect import Dialect
from steptrail.projections.fanout_schema import columns_sql as fanout_columns_sql

TRACKING_NAME = "readmodel"
LEVEL_COLUMNS = {level: f"n_{level.lower()}" for level in LEVELS}
# Serial columns: numbers users see (job_no).
SERIALS = (("jobs", "job_no"),)
# A line's id is where the store holds it: its StepLogged event's position
# times this, plus its index in the event. A rebuild gives every line the id
# it had, whatever was deleted in between, so a ``/api/logs`` cursor outlives
# a rebuild, and ``ORDER BY line_id`` is store order. Writers put at most
# 1,000 lines in an event (domain/steprecorder.py); an event holding more
# than this is not applied (projector.py). Positions up to ~9.2e12 fit
# a signed 64-bit id.
LINE_ID_STRIDE = 1_000_000
# A line row: its id, the stored line's fields in their order (its level as
# a number, its group as the seq of the line that opened it), and its event's
# position.
FIELD_COLUMNS = {"level": "levelno", "group": "group_seq"}
LINE_COLUMNS = (
    "line_id",
    "step_job_id",
    *(FIELD_COLUMNS.get(field, field) for field in LINE_FIELDS),
    "position",
)
# A group of lines: opened by the line at ``seq``, inside the group opened at
# ``parent_seq`` (None: at the top level), holding every line after its
# opening one up to ``last_seq`` (its own lines and those of groups inside
# it: a group is a run of consecutive seqs); ``n_error``: its ERROR and
# CRITICAL lines; ``is_open``: not closed yet.
GROUP_COLUMNS = (
    "step_job_id",
    "seq",
    "parent_seq",
    "depth",
    "name",
    "last_seq",
    "n_error",
    "is_open",
    "position",
)
# A step row's line-derived columns, as a StepLogged event leaves them.
MARK_COLUMNS = ("step_job_id", "position", "last_seq", *LEVEL_COLUMNS.values(), "heartbeat_at")
TABLES = (
    "tracking",
    "jobs",
    "steps",
    "lines",
    "line_groups",
    "line_marks",
    "store_identity",
    "unapplied_events",
    "deletions",
)


def levelno_sql(level: str) -> str:
    """SQL mapping a level name to its number (LEVEL_NUMBERS, in SQL)."""
    whens = " ".join(f"WHEN '{name}' THEN {n}" for name, n in LEVEL_NUMBERS.items())
    return f"CASE {level} {whens} END"


def line_id(position: int, index: int) -> int:
    """The id of the line at ``index`` in the StepLogged event at ``position``."""
    return position * LINE_ID_STRIDE + index


def insert_lines_sql(dialect: Dialect) -> str:
    """One statement inserting a StepLogged event's lines (parameters:
    position, step job id, position, the event's ``lines_json``): the
    database unpacks the JSON and numbers the lines as :func:`line_id`."""
    types = {
        LineField.SEQ: dialect.integer,
        LineField.TS: dialect.real,
        LineField.GROUP: dialect.integer,
    }
    items = [
        levelno_sql(dialect.json_item(field))
        if field is LineField.LEVEL
        else dialect.json_item(field, types.get(field))
        for field in LineField
    ]
    return (
        f"INSERT INTO lines ({', '.join(LINE_COLUMNS)})"
        f" SELECT CAST(? AS {dialect.integer}) * {LINE_ID_STRIDE} + {dialect.json_index()},"
        f" ?, {', '.join(items)}, ? FROM {dialect.json_items('?')}"
    )


def statements(dialect: Dialect) -> list[str]:
    serial, real, int_ = dialect.serial, dialect.real, dialect.integer
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
            {fanout_columns_sql(dialect)},
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
            line_id {int_} PRIMARY KEY,
            step_job_id TEXT NOT NULL,
            seq {int_} NOT NULL,
            ts {real} NOT NULL,
            levelno {int_} NOT NULL,
            logger TEXT NOT NULL,
            message TEXT NOT NULL,
            fields TEXT,
            group_seq {int_},
            position {int_} NOT NULL)""",
        "CREATE UNIQUE INDEX IF NOT EXISTS lines_by_step ON lines (step_job_id, seq)",
        f"""CREATE TABLE IF NOT EXISTS line_groups (
            step_job_id TEXT NOT NULL,
            seq {int_} NOT NULL,
            parent_seq {int_},
            depth {int_} NOT NULL,
            name TEXT NOT NULL,
            last_seq {int_} NOT NULL,
            n_error {int_} NOT NULL DEFAULT 0,
            is_open {int_} NOT NULL,
            position {int_} NOT NULL,
            PRIMARY KEY (step_job_id, seq))""",
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
