"""``steptrail delete JOB_ID`` and ``steptrail prune --older-than 30d``.

Like ``rebuild``, they open the store directly and work whether or not a
server runs. The deletion itself is an event-store transaction either way;
what differs is who projects the tombstones:

- no server: this command holds the data directory's lock (SQLite) or the
  projection lock (PostgreSQL) meanwhile and brings the read model up to date
  itself, before (so it reads current jobs) and after;
- a server runs: its projection applies them (woken by its poll, or by NOTIFY
  on PostgreSQL) and this command waits for that.

Then the space is given back (see domain/reclaim.py): an SQLite file created
before steptrail returned freed pages is converted by one VACUUM, but only
when no server uses it.
"""

from __future__ import annotations

import argparse
import fcntl
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from steptrail.api.cli_history import Unusable, guarded, postgres_readmodel, store_location
from steptrail.api.cli_options import add_store_args
from steptrail.api.retention import Remover, parse_duration, reclaim
from steptrail.domain.commands import Conflict
from steptrail.domain.reclaim import Reclaimed
from steptrail.domain.secrets import SecretStore
from steptrail.domain.store import JobStore, StoreLocation
from steptrail.projections.database import Database, SQLiteDatabase
from steptrail.projections.integrity import open_sqlite_readmodel
from steptrail.projections.postgres_live import ProjectorLock
from steptrail.projections.readmodel import ReadModel, StaleBatch
from steptrail.projections.rebuild import catch_up, wait_for_position

SERVER_APPLY_SECONDS = 30.0  # how long a running server's projection may take to apply


@dataclass
class Session:
    remover: Remover
    server_running: bool


def _server_lock(location: StoreLocation) -> IO[str] | None:
    """The data directory's lock when no server holds it (kept until closed)."""
    lock = (location.data_dir / "server.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock


def _projects_itself(location: StoreLocation) -> tuple[bool, Any]:
    """Whether no server projects this store (then this command does, holding
    the lock it returns, to close when done)."""
    if location.is_postgres:
        params = location.postgres_params()
        lock = ProjectorLock(location.postgres_conninfo(), params["schema"])
        return (True, lock) if lock.held() else (False, None)
    file_lock = _server_lock(location)
    return file_lock is not None, file_lock


def _release(lock: Any) -> None:
    if isinstance(lock, ProjectorLock):
        lock.release()
    elif lock is not None:
        lock.close()


def _catch_up(store: JobStore, readmodel: ReadModel) -> None:
    while True:
        try:
            catch_up(store, readmodel)
            return
        except StaleBatch:
            continue


@contextmanager
def _session(args: argparse.Namespace) -> Iterator[Session]:
    location = store_location(args)
    itself, lock = _projects_itself(location)
    store = JobStore(location)
    db: Database | None = None
    secrets = SecretStore(location)
    try:
        if location.is_postgres:
            db = postgres_readmodel(location)
        elif itself:  # checked as a starting server checks it
            db = open_sqlite_readmodel(location.readmodel_path, store)
        else:  # the running server's: never set aside under it
            db = SQLiteDatabase(location.readmodel_path)
        readmodel = ReadModel(db)

        def applied(position: int) -> None:
            assert db is not None
            if itself:
                _catch_up(store, readmodel)
            elif wait_for_position(db, position, SERVER_APPLY_SECONDS) < position:
                raise Unusable(
                    f"the running server has not applied the deletion at position {position}"
                    f" within {SERVER_APPLY_SECONDS:.0f} s (see its /healthz); it will"
                )

        if itself:
            _catch_up(store, readmodel)
        yield Session(Remover(store, db, secrets, applied), server_running=not itself)
    finally:
        if db is not None:
            db.close()
        store.close()
        secrets.close()
        _release(lock)


def _space_report(results: list[Reclaimed]) -> str:
    parts = []
    for r in results:
        if r.reusable_only:
            parts.append(
                f"{r.path.name}: {r.before:,} bytes kept (a file from before steptrail returned"
                " freed space: its free pages are reused; run this once with the server"
                " stopped to convert it)"
            )
        else:
            converted = " (converted to return freed space from now on)" if r.converted else ""
            parts.append(f"{r.path.name}: {r.before:,} -> {r.after:,} bytes{converted}")
    return "; ".join(parts)


def _finish(session: Session, location: StoreLocation, what: str) -> None:
    started = time.monotonic()
    results = reclaim(location, session.server_running)
    space = _space_report(results) or "PostgreSQL vacuumed the tables (their space is reusable)"
    print(f"steptrail: {what}; {space} ({time.monotonic() - started:.1f} s)")


def cmd_delete(args: argparse.Namespace) -> int:
    with _session(args) as session:
        try:
            deleted = session.remover.delete(args.job_id, "cli")
        except Conflict as e:
            print(f"steptrail: {e}", file=sys.stderr)
            return 1
        _finish(session, session.remover.store.location, f"deleted job {deleted.job_id}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    try:
        older_than = parse_duration(args.older_than)
    except ValueError as e:
        print(f"steptrail: --older-than: {e}", file=sys.stderr)
        return 2
    with _session(args) as session:
        deleted = session.remover.prune(older_than, "cli prune")
        what = f"deleted {len(deleted)} job(s) that ended more than {args.older_than} ago"
        _finish(session, session.remover.store.location, what)
    return 0


def register(sub: Any) -> None:
    """Add ``delete`` and ``prune`` to ``steptrail``'s parser."""
    delete = sub.add_parser(
        "delete", help="delete an ended job: its events and rows go, a record of it stays"
    )
    delete.add_argument("job_id")
    add_store_args(delete)
    delete.set_defaults(fn=guarded(cmd_delete))

    prune = sub.add_parser("prune", help="delete every job that ended longer ago than a duration")
    prune.add_argument(
        "--older-than",
        required=True,
        metavar="DURATION",
        help="like 30d, 12h, 90m (units s, m, h, d, w), counted from when the job ended",
    )
    add_store_args(prune)
    prune.set_defaults(fn=guarded(cmd_prune))
