"""Everything one steptrail process runs, wired together: the event store, the
read model and its projection runner, and (unless disabled) the workers."""

from __future__ import annotations

import fcntl
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TextIO

from domain.commands import JobCommands
from domain.definitions import Registry
from domain.logbridge import install as install_log_bridge
from domain.orchestrator import Orchestrator
from domain.steprecorder import ConsoleEcho
from domain.store import JobStore, StoreLocation
from projections.database import Database, SQLiteDatabase
from projections.notifier import PositionNotifier
from projections.queries import Queries
from projections.readmodel import ReadModel
from projections.runner import ProjectionRunner

log = logging.getLogger("steptrail")


class DataDirInUse(RuntimeError):
    pass


@dataclass
class Settings:
    location: StoreLocation
    registry: Registry
    workers: bool = True
    concurrency: int = 2
    lease_seconds: float = 15.0
    console: TextIO | None = field(default_factory=lambda: sys.stdout)
    capture_level: int = logging.DEBUG


def open_readmodel_db(location: StoreLocation) -> Database:
    return SQLiteDatabase(location.readmodel_path)


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.location = settings.location
        self._lock_file = self._lock_data_dir(self.location.data_dir)
        self.store = JobStore(self.location)
        self.db = open_readmodel_db(self.location)
        self.readmodel = ReadModel(self.db)
        self.notifier = PositionNotifier()
        self.queries = Queries(self.db, self.notifier)
        self.runner = ProjectionRunner(self.store, self.readmodel, self.notifier)
        self.commands = JobCommands(self.store, settings.registry)
        self.orchestrator: Orchestrator | None = None
        if settings.workers:
            console = ConsoleEcho(settings.console) if settings.console else None
            self.orchestrator = Orchestrator(
                self.commands, self.queries, settings.concurrency, console, settings.lease_seconds
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

    def start(self) -> None:
        install_log_bridge(self.settings.capture_level)
        self.runner.catch_up()
        self.runner.start()
        if self.orchestrator is not None:
            reaped = self.orchestrator.reap(float("inf"), "abandoned: the server stopped")
            if reaped:
                log.warning("marked %d step(s) of a previous run as abandoned", reaped)
            self.orchestrator.start()

    def stop(self) -> None:
        if self.orchestrator is not None:
            self.orchestrator.stop()
        self.runner.stop()
        self.runner.catch_up()
        self.db.close()
        self.store.close()
        self._lock_file.close()
