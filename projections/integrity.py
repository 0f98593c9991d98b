"""Whether the stores can be trusted at start.

The event store is the truth: a damaged one is refused (nothing derived from it
could be served as healthy). The read model is derived: one that is unreadable,
ahead of the store, or built from another store (a deleted ``events.sqlite``, a
store restored from an older backup) is set aside and rebuilt from the events.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from steptrail.domain.deletion import deletion_exists
from steptrail.domain.store import JobStore
from steptrail.projections.database import Cursor, Database, PostgresDatabase, SQLiteDatabase
from steptrail.projections.readmodel import ReadModel, create_tables, tracking_position
from steptrail.projections.schema import LINE_ID_STRIDE, TRACKING_NAME

log = logging.getLogger("steptrail")

SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


class StoreDamaged(RuntimeError):
    """The event store cannot be read: refuse to start."""


def sqlite_damage(path: Path) -> str | None:
    """What is wrong with the SQLite file at ``path`` (None: nothing found).
    ``quick_check`` reads every page: it finds garbled and truncated files."""
    try:
        # Read-write: a WAL left by a crash is recovered, as any opener would.
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30)
    except sqlite3.Error as e:
        return str(e)
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as e:
        return str(e)
    finally:
        conn.close()
    problems = [str(r[0]) for r in rows if r[0] != "ok"]
    return "; ".join(problems[:3]) or None


def check_event_file(path: Path) -> None:
    """Refuse a damaged SQLite event store, naming the file and what to do."""
    if not path.exists():
        return  # a new, empty store
    damage = sqlite_damage(path)
    if damage is not None:
        raise StoreDamaged(
            f"the event store {path} is damaged ({damage}): restore it from a backup"
            f" (or move it away to start with an empty store); nothing was changed"
        )


def set_aside(path: Path, why: str) -> Path:
    """Rename a read-model file (and its WAL) to ``<name>.broken-<UTC time>``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    kept = path.with_name(f"{path.name}.broken-{stamp}")
    for suffix in SQLITE_SUFFIXES:
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.rename(f"{kept}{suffix}")
    log.warning("steptrail: the read model %s %s: kept as %s, rebuilding it", path, why, kept)
    return kept


def _event_at(store: JobStore, position: int) -> str | None:
    """``originator_id:version`` of the stored event at ``position``, if any."""
    found = store.recorder.select_notifications(position, 1, stop=position)
    return f"{found[0].originator_id}:{found[0].originator_version}" if found else None


def _first_event(store: JobStore) -> str | None:
    found = store.recorder.select_notifications(None, 1)
    return f"{found[0].originator_id}:{found[0].originator_version}" if found else None


def older_rows(cur: Cursor) -> str | None:
    """Why the rows in ``cur`` are laid out as an older steptrail laid them
    out (None: as this one does)."""
    cur.execute("SAVEPOINT layout")
    try:
        cur.execute("SELECT group_seq FROM lines LIMIT 1")
    except (sqlite3.OperationalError, psycopg.errors.UndefinedColumn):
        cur.execute("ROLLBACK TO SAVEPOINT layout")
        return "its lines have no groups"
    finally:
        cur.execute("RELEASE SAVEPOINT layout")
    cur.execute("SELECT line_id, position FROM lines ORDER BY line_id DESC LIMIT 1")
    last = cur.fetchone()
    if last is None:
        return None
    cur.execute("SELECT 1 AS x FROM line_marks LIMIT 1")
    if cur.fetchone() is None:  # streams and time travel read lines through marks
        return "its lines have no line marks"
    # Numbered in insertion order, the largest id is at most the number of
    # lines ever stored: far below its position's first id.
    if last["line_id"] // LINE_ID_STRIDE != last["position"]:
        return "its line ids count lines instead of naming their place in the event store"
    return None


def older_layout(db: Database) -> str | None:
    """Why the read model in ``db`` was built by an older steptrail and must
    be rebuilt (None: it need not be). Tables added since are created."""
    with db.write() as cur:
        create_tables(cur)
        return older_rows(cur)


def mismatch(db: Database, store: JobStore) -> str | None:
    """Why the read model in ``db`` does not belong to ``store`` (None: it does).
    A model from before the identity was kept is adopted when the store holds
    an event at its position."""
    with db.read() as cur:
        position = tracking_position(cur)
        cur.execute(
            "SELECT first_event, tracked_event FROM store_identity WHERE name = ?",
            (TRACKING_NAME,),
        )
        identity = cur.fetchone()
        older = older_rows(cur)
    if older is not None:
        return f"was built by an older steptrail ({older})"
    if position == 0:
        return None
    at_position = store.recorder.max_notification_id() or 0
    if position > at_position:
        return f"is at position {position}, ahead of its event store (at {at_position})"
    tracked, first = _event_at(store, position), _first_event(store)
    if identity is None:
        if tracked is None or first is None:
            return f"is at position {position}, which its event store does not hold"
        with db.write() as cur:
            cur.execute(
                "INSERT INTO store_identity (name, first_event, tracked_event) VALUES (?, ?, ?)",
                (TRACKING_NAME, first, tracked),
            )
        return None
    # The first event is a job's own first one: when that job was deleted
    # since, the store's first event is a later one.
    first_deleted = deletion_exists(store, identity["first_event"].split(":")[0])
    if tracked != identity["tracked_event"] or (
        first != identity["first_event"] and not first_deleted
    ):
        return "was built from another event store (its events differ from this store's)"
    return None


def open_sqlite_readmodel(path: Path, store: JobStore) -> SQLiteDatabase:
    """The read-model file at ``path``, checked against ``store``: a damaged or
    foreign one is set aside and a new, empty one (to be caught up) is opened."""
    if path.exists():
        damage = sqlite_damage(path)
        if damage is not None:
            set_aside(path, f"is damaged ({damage})")
    db: SQLiteDatabase | None = None
    try:
        db = SQLiteDatabase(path)
        ReadModel(db)  # the tables, in a new or older file
        why = mismatch(db, store)
    except sqlite3.DatabaseError as e:  # damage that quick_check could not see
        why = f"cannot be read ({e})"
    if db is not None and why is None:
        return db
    if db is not None:
        db.close()
    set_aside(path, why or "cannot be opened")
    return SQLiteDatabase(path)


def check_postgres_readmodel(db: PostgresDatabase, readmodel: ReadModel, store: JobStore) -> None:
    """Reset a PostgreSQL read model that does not belong to ``store``."""
    why = mismatch(db, store)
    if why is not None:
        log.warning("steptrail: the read model in schema %s %s: rebuilding it", db.schema, why)
        readmodel.reset()
