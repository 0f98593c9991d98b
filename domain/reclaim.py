"""Giving the disk space of deleted jobs back.

SQLite keeps freed pages inside the file unless the file was created with
``auto_vacuum=INCREMENTAL``; then ``PRAGMA incremental_vacuum(N)`` moves N
free pages to the end and cuts them off, in one short write transaction. Done
in small chunks, writers (steps logging, the projection) wait at most one
chunk. A file created before that setting can only be converted by a whole
``VACUUM``, which blocks every writer while it runs: that is done only when
no server uses the data directory.

PostgreSQL's ``VACUUM`` (not ``FULL``) marks the deleted rows' space reusable
without blocking reads or writes; the files keep their size, as PostgreSQL
does. eventsourcing's events table sets a very high autovacuum threshold, so
it is vacuumed here explicitly.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL
CHUNK_PAGES = 256  # pages per incremental_vacuum transaction (1 MiB at 4 KiB pages)
LOCK_TIMEOUT = 30.0


def create_incremental(path: Path) -> None:
    """Create the SQLite file at ``path`` set for incremental vacuum (the
    setting must come before any table); an existing file is left alone."""
    if path.exists():
        return
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA auto_vacuum={INCREMENTAL}")
        conn.execute("PRAGMA journal_mode=WAL")  # writes the header, keeping the setting
    finally:
        conn.close()


@dataclass(frozen=True)
class Reclaimed:
    path: Path
    before: int  # bytes, WAL included
    after: int
    converted: bool  # the file was VACUUMed into incremental mode
    reusable_only: bool  # an older file a running server uses: freed pages are reused only


def file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def reclaim_sqlite(path: Path, may_block_writers: bool) -> Reclaimed:
    """Return the free pages of the SQLite file at ``path`` to the file
    system. ``may_block_writers``: no server uses it, so an older file may be
    converted with a whole VACUUM."""
    before = file_bytes(path)
    conn = sqlite3.connect(path, isolation_level=None, timeout=LOCK_TIMEOUT)
    converted = False
    try:
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != INCREMENTAL:
            if not may_block_writers:
                return Reclaimed(path, before, before, False, True)
            conn.execute(f"PRAGMA auto_vacuum={INCREMENTAL}")
            conn.execute("VACUUM")
            converted = True
        while conn.execute("PRAGMA freelist_count").fetchone()[0] > 0:
            conn.execute(f"PRAGMA incremental_vacuum({CHUNK_PAGES})").fetchall()
            # Copy the moved pages back at once: left in the WAL, they would
            # make the next writer's commit pay for that checkpoint.
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        # The cut-off pages have left the file; a short, blocking checkpoint
        # empties the WAL file too.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()
    return Reclaimed(path, before, file_bytes(path), converted, False)


def vacuum_postgres(conninfo: str, schema: str, tables: list[str]) -> None:
    """``VACUUM (ANALYZE)`` the tables (it cannot run inside a transaction)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(conninfo, autocommit=True) as conn:
        for table in tables:
            conn.execute(
                sql.SQL("VACUUM (ANALYZE) {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
            )
