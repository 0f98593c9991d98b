"""Deleting jobs and retention: the use case shared by the API, the CLI and
``serve --retention``.

:class:`Remover` deletes one job or every ended job older than a duration
(by when it ended): each job in its own event-store transaction (see
domain/deletion.py), so writers wait for one job at a time. ``applied`` makes
the read model apply a tombstone and waits for it (the server wakes its
runner; the CLI catches up itself or waits for the running server's), so a
prune reads the next jobs from a model that no longer lists the deleted ones.
Then :func:`reclaim` gives the space back (domain/reclaim.py).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from steptrail.domain.aggregates import JOB_FINAL
from steptrail.domain.commands import Conflict, NotFound
from steptrail.domain.deletion import Deleted, delete_job, deletion_exists
from steptrail.domain.reclaim import Reclaimed, reclaim_sqlite, vacuum_postgres
from steptrail.domain.secrets import SecretStore
from steptrail.domain.store import JobStore, StoreLocation
from steptrail.projections.database import Database
from steptrail.projections.deletion import ended_before, job_row

log = logging.getLogger("steptrail.retention")

PRUNE_PAGE = 100  # jobs read from the model per round
CHECK_SECONDS = 3600.0  # serve --retention: how often it looks (and at start)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Tables whose rows a deletion removes, vacuumed after it on PostgreSQL.
READMODEL_TABLES = ["lines", "line_marks", "steps", "jobs", "unapplied_events"]


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` -> seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or float(match[1]) <= 0:
        raise ValueError(
            f"a duration is a positive number and a unit (s, m, h, d, w), like 30d; got {text!r}"
        )
    return float(match[1]) * _UNIT_SECONDS[match[2]]


@dataclass
class Remover:
    store: JobStore
    db: Database
    secrets: SecretStore
    applied: Callable[[int], None]  # returns once the read model has applied this position
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def delete(self, job_id: str, deleted_by: str) -> Deleted:
        """Delete one ended job. NotFound for an unknown (or already deleted)
        job, Conflict for one that has not ended."""
        row = job_row(self.db, job_id)
        if row is None:
            if deletion_exists(self.store, job_id):
                raise NotFound(f"job {job_id} was deleted (its record: GET /api/deletions)")
            raise NotFound(f"no job with id {job_id!r}")
        if row["status"] not in JOB_FINAL:
            raise Conflict(f"job {job_id} is {row['status']}: only an ended job can be deleted")
        deleted = delete_job(self.store, job_id, row["job_no"], row["created_at"], deleted_by)
        self.secrets.forget(deleted.job_id)  # none are left once a job ends; to be sure
        self.applied(deleted.position)
        return deleted

    def prune(self, older_than: float, deleted_by: str) -> list[Deleted]:
        """Delete every job that ended more than ``older_than`` seconds ago,
        the oldest first. A job retried meanwhile is left alone."""
        cutoff = time.time() - older_than
        deleted: list[Deleted] = []
        left: set[str] = set()
        with self._lock:  # two rounds at once would only trip over each other
            while True:
                found = ended_before(self.db, cutoff, PRUNE_PAGE + len(left))
                ids = [i for i in found if i not in left]
                if not ids:
                    return deleted
                for job_id in ids:
                    try:
                        deleted.append(self.delete(job_id, deleted_by))
                    except (NotFound, Conflict) as e:
                        log.info("retention: left job %s alone: %s", job_id, e)
                        left.add(job_id)


def reclaim(location: StoreLocation, server_running: bool) -> list[Reclaimed]:
    """Give the space of deleted rows back, in both stores (see domain/reclaim.py)."""
    if location.is_postgres:
        params = location.postgres_params()
        tables = ["steptrail_events", "steptrail_snapshots", *READMODEL_TABLES]
        vacuum_postgres(location.postgres_conninfo(), params["schema"], tables)
        return []
    return [
        reclaim_sqlite(path, may_block_writers=not server_running)
        for path in (location.events_path, location.readmodel_path)
        if path.exists()
    ]


class RetentionLoop:
    """``serve --retention``: prune at start and every ``every`` seconds."""

    def __init__(self, remover: Remover, older_than: float, every: float = CHECK_SECONDS) -> None:
        self.remover = remover
        self.older_than = older_than
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steptrail-retention", daemon=True)
        self._warned = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the next round tries again; serving goes on
                log.exception("retention: pruning failed")
            self._stop.wait(self.every)

    def run_once(self) -> list[Deleted]:
        deleted = self.remover.prune(self.older_than, "retention")
        if deleted:
            log.warning("retention: deleted %d job(s) that ended long ago", len(deleted))
            for result in reclaim(self.remover.store.location, server_running=True):
                if result.reusable_only and not self._warned:
                    self._warned = True
                    log.warning(
                        "retention: %s was created before steptrail returned freed space:"
                        " its free pages are reused, not returned (run `steptrail prune`"
                        " once with the server stopped to convert it)",
                        result.path,
                    )
        return deleted
