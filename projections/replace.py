"""Rebuild the live read model without taking it away from its readers.

The rebuild fills a scratch file while the live model keeps serving (and its
runner keeps applying). Then ONE write transaction on the live model, which
every projection runner in every process has to wait for, catches the scratch
model up to the store and copies it over the live rows. Readers see the old
model or the new one, never a mix; a runner that had read a batch before the
swap finds the model moved (StaleBatch) and reads again from the new position.

On SQLite that transaction holds the file's write lock; on PostgreSQL it holds
the tracking row (FOR UPDATE), which every runner locks before a batch.
Nothing here needs the server's cooperation, so ``steptrail rebuild`` works the
same whether a server is running or not.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from steptrail.domain.store import JobStore
from steptrail.projections.database import Cursor, PostgresDatabase, SQLiteCursor, SQLiteDatabase
from steptrail.projections.integrity import older_rows, set_aside, sqlite_damage
from steptrail.projections.readmodel import (
    ReadModel,
    create_tables,
    drop_tables,
    tracking_position,
)
from steptrail.projections.rebuild import catch_up, rebuild_into
from steptrail.projections.schema import TABLES, TRACKING_NAME

COPY_PAGE = 20_000
LOCK_TIMEOUT = 60.0  # seconds to wait for the live runner's current batch


def _swap_sqlite(store: JobStore, live_path: Path, rebuilt: SQLiteDatabase) -> int:
    conn = sqlite3.connect(live_path, isolation_level=None, timeout=LOCK_TIMEOUT)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        cur = conn.cursor(SQLiteCursor)
        cur.row_factory = sqlite3.Row  # rows read by column name
        _fresh_tables(cur)
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


def _fresh_tables(cur: Cursor) -> None:
    """Tables for the rebuilt rows: created where the model never existed,
    created again where an older steptrail laid them out differently."""
    create_tables(cur)
    if older_rows(cur) is not None:
        drop_tables(cur)
        create_tables(cur)


def _swap_postgres(store: JobStore, live: PostgresDatabase, rebuilt: SQLiteDatabase) -> int:
    with live.write() as cur:
        _fresh_tables(cur)
    with live.write() as cur:
        # Every runner locks this row before applying a batch: they wait here.
        tracking_position(cur, lock=True)
        position = catch_up(store, ReadModel(rebuilt))  # everything stored until now
        for table in reversed(TABLES[1:]):
            cur.execute(f"DELETE FROM {table}")  # not TRUNCATE: readers keep their snapshot
        with rebuilt.read() as source:
            for table in TABLES[1:]:
                _copy_rows(source, cur, table)
        cur.execute("UPDATE tracking SET position = ? WHERE name = ?", (position, TRACKING_NAME))
        cur.restore_serials()  # the rows came with their numbers
    return position


def _copy_rows(source: Cursor, target: Cursor, table: str) -> None:
    """Copy a table page by page, in rowid order (the order it was filled in)."""
    after = 0
    while True:
        source.execute(
            f"SELECT rowid AS rowid_, * FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (after, COPY_PAGE),
        )
        rows = source.fetchall()
        if not rows:
            return
        columns = [c for c in rows[0] if c != "rowid_"]
        target.insert_rows(table, columns, [[r[c] for c in columns] for r in rows])
        after = rows[-1]["rowid_"]


def rebuild_live(store: JobStore, live: Path | PostgresDatabase) -> int:
    """Rebuild the live read model (an SQLite file, or the PostgreSQL schema)
    from ``store`` and swap it in; return the position it is at afterwards.
    A damaged SQLite file is set aside and replaced (nothing could read it)."""
    if isinstance(live, Path) and live.exists():
        damage = sqlite_damage(live)
        if damage is not None:
            set_aside(live, f"is damaged ({damage})")
    scratch_dir = live.parent if isinstance(live, Path) else None
    with tempfile.TemporaryDirectory(prefix="steptrail-rebuild-", dir=scratch_dir) as tmp:
        rebuilt = rebuild_into(store, Path(tmp) / "readmodel.sqlite")  # live serves meanwhile
        try:
            catch_up(store, ReadModel(rebuilt))  # close to the store's end before locking
            if isinstance(live, Path):
                return _swap_sqlite(store, live, rebuilt)
            return _swap_postgres(store, live, rebuilt)
        finally:
            rebuilt.close()
