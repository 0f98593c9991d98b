"""The command-side application: where Manager and StepJob events are stored.

By default the event store is an SQLite file under the data directory; a
``postgresql://`` URL puts it in PostgreSQL instead (scale-out).
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Compressor, Recording
from eventsourcing.utils import get_topic

from steptrail.domain.aggregates import StepJob
from steptrail.domain.reclaim import create_incremental
from steptrail.domain.recorders import JobRecorder, PostgresJobRecorder, SQLiteJobRecorder


class StateCompressor(Compressor):
    """Stored event states are zlib-compressed (level 1: a StepLogged of 1,000
    lines shrinks ~6x for well under a millisecond). States written before
    compression was used are JSON text, which starts with ``{`` where zlib's
    output starts with ``x``: those are read as they are."""

    def compress(self, data: bytes) -> bytes:
        return zlib.compress(data, 1)

    def decompress(self, data: bytes) -> bytes:
        return data if data[:1] == b"{" else zlib.decompress(data)


@dataclass(frozen=True)
class StoreLocation:
    """Where events and the read model live: a data directory or a PostgreSQL URL."""

    data_dir: Path
    postgres_url: str | None = None

    @property
    def is_postgres(self) -> bool:
        return self.postgres_url is not None

    @property
    def events_path(self) -> Path:
        return self.data_dir / "events.sqlite"

    @property
    def readmodel_path(self) -> Path:
        return self.data_dir / "readmodel.sqlite"

    def postgres_params(self) -> dict[str, str]:
        """Connection parameters parsed from the ``postgresql://`` URL; the
        optional ``?schema=NAME`` keeps one deployment's tables apart."""
        assert self.postgres_url is not None
        url = urlparse(self.postgres_url)
        schema = parse_qs(url.query).get("schema", ["public"])[0]
        if not schema.replace("_", "").isalnum():
            raise ValueError(f"schema must be letters, digits and _, got {schema!r}")
        return {
            "host": url.hostname or "127.0.0.1",
            "port": str(url.port or 5432),
            "user": unquote(url.username or "postgres"),
            "password": unquote(url.password or ""),
            "dbname": url.path.lstrip("/") or "postgres",
            "schema": schema,
        }

    def postgres_conninfo(self) -> str:
        p = self.postgres_params()
        return " ".join(
            f"{key}={p[name]}"
            for key, name in (
                ("host", "host"),
                ("port", "port"),
                ("user", "user"),
                ("password", "password"),
                ("dbname", "dbname"),
            )
            if p[name]
        )

    def event_store_env(self) -> dict[str, str]:
        compressor = {"COMPRESSOR_TOPIC": get_topic(StateCompressor)}
        if self.postgres_url is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            return {
                **compressor,
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "APPLICATION_RECORDER_TOPIC": get_topic(SQLiteJobRecorder),
                "SQLITE_DBNAME": str(self.events_path),
                "SQLITE_LOCK_TIMEOUT": "30",
            }
        p = self.postgres_params()
        return {
            **compressor,
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "APPLICATION_RECORDER_TOPIC": get_topic(PostgresJobRecorder),
            "POSTGRES_DBNAME": p["dbname"],
            "POSTGRES_HOST": p["host"],
            "POSTGRES_PORT": p["port"],
            "POSTGRES_USER": p["user"],
            "POSTGRES_PASSWORD": p["password"],
            "POSTGRES_SCHEMA": p["schema"],
            "POSTGRES_POOL_SIZE": "8",
            "POSTGRES_MAX_OVERFLOW": "8",
        }


def parse_store(store: str | None, data_dir: str | Path) -> StoreLocation:
    """``store`` is None/``sqlite`` (files under data_dir) or a PostgreSQL URL."""
    if store and store.startswith(("postgresql://", "postgres://")):
        return StoreLocation(Path(data_dir), store)
    if store and store not in ("sqlite",):
        raise ValueError(f"unknown store {store!r}: use 'sqlite' or a postgresql:// URL")
    return StoreLocation(Path(data_dir))


def create_postgres_schema(location: StoreLocation) -> None:
    """eventsourcing creates its tables but not the schema they live in."""
    import psycopg

    schema = location.postgres_params()["schema"]
    with psycopg.connect(location.postgres_conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')


WORKER_STORE_ENV = {"CREATE_TABLE": "no", "POSTGRES_POOL_SIZE": "2", "POSTGRES_MAX_OVERFLOW": "2"}


class JobStore(Application[UUID]):
    """Stores jobs' events. Saves wake the projection runner in this process so
    the read model follows within milliseconds rather than a poll interval."""

    name = "steptrail"
    snapshotting_intervals = {StepJob: 100}

    def __init__(self, location: StoreLocation, in_worker: bool = False) -> None:
        """``in_worker``: a worker process's store, which its server has set up
        (concurrent DDL on PostgreSQL fails with "tuple concurrently updated")
        and which needs few connections (one step at a time)."""
        self.location = location
        self._saved_listeners: list[Callable[[int], None]] = []
        self._listeners_lock = threading.Lock()
        env = location.event_store_env()
        if in_worker:
            env |= WORKER_STORE_ENV
        elif location.is_postgres:
            create_postgres_schema(location)
        else:
            create_incremental(location.events_path)  # deleted jobs give their space back
        super().__init__(env=env)

    @property
    def job_recorder(self) -> JobRecorder[Any]:
        """The recorder, with the reads of a job's history (domain/recorders.py)."""
        recorder = self.recorder
        assert isinstance(recorder, JobRecorder), "APPLICATION_RECORDER_TOPIC names it"
        return recorder

    @property
    def snapshots_table(self) -> str | None:
        """Where the library keeps snapshots (None: it keeps none)."""
        snapshots: Any = self.snapshots
        return snapshots.recorder.events_table_name if snapshots is not None else None

    def on_saved(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(max_position)`` after every save made in this process."""
        with self._listeners_lock:
            self._saved_listeners.append(listener)

    def _notify(self, recordings: list[Recording[Any]]) -> None:
        if not recordings:
            return
        position = max(r.notification.id for r in recordings)
        with self._listeners_lock:
            listeners = list(self._saved_listeners)
        for listener in listeners:
            listener(position)
