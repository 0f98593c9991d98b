"""Rebuild the live read model without taking it away from its readers.

The rebuild fills a scratch file while the live model keeps serving (and its
runner keeps applying). Then ONE write transaction on the live model, which
every projection runner in every process has to wait for, catches the scratch
model up to the store and copies it over the live rows. Readers see the old
model or the new one, never a mix; a runner that had read a batch before the
swap finds the model moved (StaleBatch) and reads again from the new position.

Nothing here needs the server's cooperation, so ``steptrail rebuild`` works the
same whether a server is running or not.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from domain.store import JobStore
from projections.database import SQLiteDatabase
from projections.readmodel import ReadModel
from projections.rebuild import catch_up, rebuild_into
from projections.schema import TRACKING_NAME, create_tables

TABLES = ("tracking", "jobs", "steps", "lines")
LOCK_TIMEOUT = 60.0  # seconds to wait for the live runner's current batch


def _swap_sqlite(store: JobStore, live_path: Path, rebuilt: SQLiteDatabase) -> int:
    conn = sqlite3.connect(live_path, isolation_level=None, timeout=LOCK_TIMEOUT)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        create_tables(conn.cursor(), "sqlite")  # a data dir whose model never existed
        conn.execute("ATTACH DATABASE ? AS rebuilt", (str(rebuilt.path),))
        conn.execute("BEGIN")
        # Take the live model's write lock, and only its: BEGIN IMMEDIATE would
        # also lock the attached scratch file, which catch_up still writes.
        conn.execute(
            "UPDATE main.tracking SET position = position WHERE name = ?", (TRACKING_NAME,)
        )
        try:
            position = catch_up(store, ReadModel(rebuilt))  # everything stored until now
            for table in TABLES:
                info = conn.execute(f"PRAGMA rebuilt.table_info({table})").fetchall()
                columns = ", ".join(row[1] for row in info)
                conn.execute(f"DELETE FROM main.{table}")
                conn.execute(
                    f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM rebuilt.{table}"
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return position
    finally:
        conn.close()


def rebuild_live(store: JobStore, live_path: Path) -> int:
    """Rebuild the read model at ``live_path`` from ``store`` and swap it in;
    return the position the live model is at afterwards."""
    with tempfile.TemporaryDirectory(prefix="steptrail-rebuild-", dir=live_path.parent) as tmp:
        rebuilt = rebuild_into(store, Path(tmp) / "readmodel.sqlite")  # live serves meanwhile
        try:
            catch_up(store, ReadModel(rebuilt))  # close to the store's end before locking
            return _swap_sqlite(store, live_path, rebuilt)
        finally:
            rebuilt.close()
