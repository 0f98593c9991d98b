"""The read model's columns for fan-out (see domain/fanout.py), on the
``steps`` table: a child's identity (its parent step, map and index, the
item's label), and a parent's roll-up of its children (how many by status,
their lines by level). The roll-up is kept by the projector in the same
transaction as each child's event, never recomputed by a later query."""

from __future__ import annotations

from typing import TYPE_CHECKING

from steptrail.domain.vocabulary import (
    ABANDONED,
    CANCELLED,
    FAILED,
    LEVELS,
    QUEUED,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
)
from steptrail.projections.dialect import Dialect

if TYPE_CHECKING:
    from steptrail.projections.database import Cursor

CHILD_STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, SKIPPED, ABANDONED)
STATUS_COLUMNS = {status: f"children_{status}" for status in CHILD_STATUSES}
CHILD_LEVEL_COLUMNS = {level: f"children_n_{level.lower()}" for level in LEVELS}
TOTAL, LINES = "children_total", "children_lines"
ROLLUP_COLUMNS = (TOTAL, *STATUS_COLUMNS.values(), *CHILD_LEVEL_COLUMNS.values(), LINES)


def columns(dialect: Dialect) -> list[tuple[str, str]]:
    int_ = dialect.integer
    return [
        ("parent_step_job_id", "TEXT"),
        ("map_no", int_),
        ("child_index", int_),
        ("child_label", "TEXT"),
        *((name, f"{int_} NOT NULL DEFAULT 0") for name in ROLLUP_COLUMNS),
    ]


def columns_sql(dialect: Dialect) -> str:
    """For the steps table's CREATE TABLE."""
    return ", ".join(f"{name} {sql_type}" for name, sql_type in columns(dialect))


def create(cur: Cursor) -> None:
    """Add the columns to a steps table made before fan-out existed (its
    rows are no children and have none), and the index of children."""
    for name, sql_type in columns(cur.dialect):
        cur.execute("SAVEPOINT add_column")
        try:
            cur.execute(f"ALTER TABLE steps ADD COLUMN {name} {sql_type}")
        except Exception:  # it is there already (a database failure shows below)
            cur.execute("ROLLBACK TO SAVEPOINT add_column")
        cur.execute("RELEASE SAVEPOINT add_column")
    cur.execute(
        "CREATE INDEX IF NOT EXISTS steps_by_parent"
        " ON steps (parent_step_job_id, map_no, child_index, attempt)"
    )
