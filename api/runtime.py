"""Everything one steptrail process runs, wired together: the event store, the
read model and its projection runner, and (unless disabled) the workers."""

from __future__ import annotations

import fcntl
import logging
import sys
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import IO, TextIO

from steptrail.api.retention import Remover, RetentionLoop
from steptrail.domain.builtin_jobs import load_registry
from steptrail.domain.commands import JobCommands
from steptrail.domain.console import ConsoleEcho
from steptrail.domain.definitions import Registry
from steptrail.domain.logbridge import install as install_log_bridge
from steptrail.domain.orchestrator import Orchestrator
from steptrail.domain.secrets import SecretStore
from steptrail.domain.store import JobStore, StoreLocation
from steptrail.domain.terminal import for_terminal, use_colour
from steptrail.domain.worker import WorkerSpec
from steptrail.projections.console_feed import ConsoleFeed
from steptrail.projections.database import PostgresDatabase, SQLiteDatabase
from steptrail.projections.integrity import (
    check_event_file,
    check_postgres_readmodel,
    open_sqlite_readmodel,
)
from steptrail.projections.notifier import PositionNotifier
from steptrail.projections.postgres_live import Listener, ProjectorLock, readmodel_channel
from steptrail.projections.queries import Queries
from steptrail.projections.readmodel import ReadModel
from steptrail.projections.runner import ProjectionRunner

log = logging.getLogger("steptrail")

APPLY_WAIT_SECONDS = 10.0  # how long a deletion waits for the read model to apply it


class DataDirInUse(RuntimeError):
    pass


@dataclass
class Settings:
    location: StoreLocation
    job_sources: tuple[str, ...] = ()  # --jobs modules and files (built-ins are always there)
    workers: bool = True
    concurrency: int = 2  # worker processes, each running one step at a time
    lease_seconds: float = 15.0
    cancel_grace: float = 5.0  # seconds a step asked to stop has before its worker is stopped
    console: TextIO | None = field(default_factory=lambda: sys.stdout)
    console_color: str = "auto"  # auto | always | never: see domain/terminal.py use_colour
    retention: float | None = None  # seconds: ended jobs older than this are deleted
    capture_level: int = logging.DEBUG

    @cached_property
    def registry(self) -> Registry:
        return load_registry(self.job_sources)

    def worker_spec(self) -> WorkerSpec:
        return WorkerSpec(self.location, self.job_sources, self.capture_level)


class Runtime:
    """On SQLite: one process owns the data directory (a file lock) and does
    everything. On PostgreSQL: any number of processes share the store; one at a
    time projects (advisory lock) and all are woken by LISTEN/NOTIFY."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.location = location = settings.location
        self._lock_file = None if location.is_postgres else self._lock_data_dir(location.data_dir)
        if not location.is_postgres:
            check_event_file(location.events_path)  # refuses a damaged store
        self.store = JobStore(location)
        self.notifier = PositionNotifier()
        self.listener: Listener | None = None
        if location.is_postgres:
            conninfo, schema = location.postgres_conninfo(), location.postgres_params()["schema"]
            self.db: PostgresDatabase | SQLiteDatabase = PostgresDatabase(conninfo, schema)
            self.readmodel = ReadModel(self.db, readmodel_channel(schema))
            check_postgres_readmodel(self.db, self.readmodel, self.store)
            self.runner = ProjectionRunner(
                self.store, self.readmodel, self.notifier, lock=ProjectorLock(conninfo, schema)
            )
            saved_channel = self.store.job_recorder.wake_channel
            assert saved_channel is not None
            self.listener = Listener(
                conninfo,
                {
                    saved_channel: self.runner.wake,
                    readmodel_channel(schema): lambda p: self.notifier.publish(int(p)),
                },
                poll=lambda: self.notifier.publish(self.readmodel.position()),
            )
        else:
            self.db = open_sqlite_readmodel(location.readmodel_path, self.store)
            self.readmodel = ReadModel(self.db)
            self.runner = ProjectionRunner(self.store, self.readmodel, self.notifier)
        self.queries = Queries(self.db, self.notifier)
        self.secrets = SecretStore(location)
        self.commands = JobCommands(self.store, settings.registry, self.secrets)
        if settings.console is not None:
            colour = use_colour(settings.console_color, settings.console)
            echo = ConsoleEcho(settings.console, partial(for_terminal, colour=colour))
            feed = ConsoleFeed(echo, self.queries.get_step)
            self.runner.on_applied(feed.applied)
        self.remover = Remover(self.store, self.db, self.secrets, self._applied)
        self.retention = (
            RetentionLoop(self.remover, settings.retention) if settings.retention else None
        )
        self.orchestrator: Orchestrator | None = None
        if settings.workers:
            self.orchestrator = Orchestrator(
                self.commands,
                self.queries,
                settings.worker_spec(),
                settings.concurrency,
                settings.lease_seconds,
                settings.cancel_grace,
                on_saved=self.runner.wake,
            )

    @staticmethod
    def _lock_data_dir(data_dir: Path) -> IO[str]:
        """One server per data directory: SQLite files have one writer process,
        and at start every step still marked running is known to be orphaned."""
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = (data_dir / "server.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise DataDirInUse(f"another steptrail process is using {data_dir}") from None
        return lock

    def _applied(self, position: int) -> None:
        """A deletion was stored at ``position``: wake the projection, wait for it."""
        self.runner.wake()
        self.notifier.wait(position - 1, APPLY_WAIT_SECONDS)

    def start(self) -> None:
        install_log_bridge(self.settings.capture_level)
        self.runner.catch_up()
        self.runner.start()
        if self.listener is not None:
            self.listener.start()
        if self.orchestrator is not None:
            if self._lock_file is not None:
                # We own the data directory: whatever is still running is orphaned.
                reaped = self.orchestrator.reap(float("inf"), "abandoned: the server stopped")
                if reaped:
                    log.warning("marked %d step(s) of a previous run as abandoned", reaped)
            self.orchestrator.start()
        if self.retention is not None:
            self.retention.start()

    def stop(self) -> None:
        if self.retention is not None:
            self.retention.stop()
        if self.orchestrator is not None:
            self.orchestrator.stop()
        if self.listener is not None:
            self.listener.stop()
        self.runner.stop()
        self.db.close()
        self.store.close()
        self.secrets.close()
        if self._lock_file is not None:
            self._lock_file.close()
