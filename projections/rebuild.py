"""Rebuild a read model from the event store and compare two read models.

A rebuild replays every event through the same projector the live runner
uses, so a healthy live model and a rebuild are row-for-row identical.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from domain.store import JobStore
from projections.database import Database, SQLiteDatabase
from projections.notifier import PositionNotifier
from projections.readmodel import ReadModel
from projections.runner import ProjectionRunner

# Each table with the columns that identify a row, in a stable order.
TABLE_KEYS = {
    "tracking": ("name",),
    "jobs": ("job_id",),
    "steps": ("step_job_id",),
    "lines": ("step_job_id", "seq"),
}


def rebuild_into(store: JobStore, path: Path) -> SQLiteDatabase:
    """Replay all events into a fresh SQLite read model at ``path``."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = SQLiteDatabase(path)
    ProjectionRunner(store, ReadModel(db), PositionNotifier()).catch_up()
    return db


def _rows(db: Database, table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    keys = TABLE_KEYS[table]
    with db.read() as cur:
        cur.execute(f"SELECT * FROM {table}")
        rows = cur.fetchall()
    return {tuple(r[k] for k in keys): r for r in rows}


def compare(live: Database, rebuilt: Database) -> list[str]:
    """Differences between two read models, each naming the job or step."""
    differences = []
    for table in TABLE_KEYS:
        a, b = _rows(live, table), _rows(rebuilt, table)
        for key in sorted(set(a) | set(b), key=repr):
            if key not in b:
                differences.append(f"{table} {key}: only in the live read model")
            elif key not in a:
                differences.append(f"{table} {key}: missing from the live read model")
            elif a[key] != b[key]:
                changed = sorted(c for c in a[key] if a[key][c] != b[key].get(c))
                differences.append(f"{table} {key}: differs in {', '.join(changed)}")
    return differences
