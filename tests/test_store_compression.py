"""Event states are stored compressed, and a store written before that (plain
JSON states) is read as it is: old and new events side by side, one job.
On SQLite files and on PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
from eventsourcing.application import Application

from steptrail.domain.aggregates import Manager
from steptrail.domain.commands import get_manager
from steptrail.domain.store import JobStore, create_postgres_schema, parse_store


class UncompressedStore(Application):
    """The store as it was written before compression (same tables)."""

    name = JobStore.name


def _states(location_store: str | None, tmp_path: Path) -> list[bytes]:
    location = parse_store(location_store, tmp_path / "data")
    if location.postgres_url is None:
        with sqlite3.connect(location.events_path) as conn:
            rows = conn.execute("SELECT state FROM stored_events ORDER BY rowid").fetchall()
    else:
        schema = location.postgres_params()["schema"]
        with psycopg.connect(location.postgres_conninfo()) as conn:
            rows = conn.execute(
                f'SELECT state FROM "{schema}".steptrail_events ORDER BY notification_id'  # type: ignore[arg-type]
            ).fetchall()
    return [bytes(r[0]) for r in rows]


def test_old_uncompressed_states_and_new_compressed_ones_read_alike(
    tmp_path: Path, any_store: str | None
) -> None:
    location = parse_store(any_store, tmp_path / "data")
    if location.is_postgres:
        create_postgres_schema(location)
    env = {k: v for k, v in location.event_store_env().items() if k != "COMPRESSOR_TOPIC"}
    old = UncompressedStore(env=env)
    manager = Manager("demo", {"lines": 5}, ["a", "b"])
    old.save(manager)
    old.close()

    store = JobStore(location)
    try:
        manager = get_manager(store, str(manager.id))
        manager.start("worker-1")
        store.save(manager)
        again = get_manager(store, str(manager.id))
        assert (again.definition, again.params, again.status) == ("demo", {"lines": 5}, "running")
    finally:
        store.close()
    states = _states(any_store, tmp_path)
    assert [s[:1] for s in states] == [b"{", b"x"]  # plain JSON, then zlib
