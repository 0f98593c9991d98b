"""Retention benchmark: pruning half the jobs of an SQLite store while a
writer keeps saving, and the disk space that comes back.

Writes N ended jobs of one step each with L lines (StepLogged events of 1,000
lines), projects them, then, with a writer thread saving one small event every
2 ms to the same event store the whole time, measures in the same run:

- the writer's save latency (median, p99, max) before the prune: the baseline;
- the same while half the jobs are deleted one by one (each an event-store
  transaction, then the projection applies its tombstone) and the freed pages
  are returned (``incremental_vacuum`` in chunks): the longest a writer waited;
- jobs deleted per second, and the bytes of events.sqlite + readmodel.sqlite
  (WAL included) before and after.

    python bench/retention.py [--jobs 40] [--lines 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from steptrail.api.retention import Remover, reclaim
from steptrail.domain.aggregates import SUCCEEDED, Manager, StepJob
from steptrail.domain.reclaim import file_bytes
from steptrail.domain.secrets import SecretStore
from steptrail.domain.store import JobStore, StoreLocation
from steptrail.projections.database import SQLiteDatabase
from steptrail.projections.deletion import ended_before
from steptrail.projections.readmodel import ReadModel
from steptrail.projections.rebuild import catch_up


def write_jobs(store: JobStore, jobs: int, lines: int) -> None:
    for _ in range(jobs):
        manager = Manager("bench", {}, ["work"])
        manager.start("bench")
        step = StepJob(
            manager_id=str(manager.id), step_name="work", step_index=0, attempt=1, worker_id="bench"
        )
        manager.step_started(str(step.id), "work", 0, 1)
        store.save(step, manager)
        for first in range(0, lines, 1000):
            step.log(
                [
                    [time.time(), "INFO", "bench", f"line {first + i} of a job", None]
                    for i in range(min(1000, lines - first))
                ]
            )
            store.save(step)
        step.complete(SUCCEEDED)
        manager.step_finished(0, SUCCEEDED)
        manager.complete(SUCCEEDED)
        store.save(step, manager)


class Writer(threading.Thread):
    """Saves one small event every 2 ms; records each save's latency."""

    def __init__(self, store: JobStore) -> None:
        super().__init__(daemon=True)
        self.store = store
        self.latencies: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        step = StepJob(
            manager_id=str(Manager("writer", {}, ["w"]).id),
            step_name="w",
            step_index=0,
            attempt=1,
            worker_id="writer",
        )
        self.store.save(step)
        while not self.stop.wait(0.002):
            step.report_progress(1, 2, "tick")
            started = time.perf_counter()
            self.store.save(step)
            self.latencies.append(time.perf_counter() - started)


def summary(latencies: list[float]) -> str:
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[int(len(ms) * 0.99)]
    return f"median {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--lines", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        location = StoreLocation(Path(tmp))
        store = JobStore(location)
        write_jobs(store, args.jobs, args.lines)
        db = SQLiteDatabase(location.readmodel_path)
        readmodel = ReadModel(db)
        catch_up(store, readmodel)
        files = (location.events_path, location.readmodel_path)
        remover = Remover(store, db, SecretStore(location), lambda _: catch_up(store, readmodel))
        writer = Writer(store)
        writer.start()
        time.sleep(2.0)  # the baseline: the writer alone
        baseline = list(writer.latencies)
        before = sum(file_bytes(p) for p in files)
        started = time.perf_counter()
        doomed = ended_before(db, time.time() + 1, args.jobs // 2)
        for job_id in doomed:
            remover.delete(job_id, "bench")
        deleting = time.perf_counter() - started
        reclaimed_at = time.perf_counter()
        reclaim(location, server_running=True)
        reclaiming = time.perf_counter() - reclaimed_at
        during = writer.latencies[len(baseline) :]
        writer.stop.set()
        writer.join()
        after = sum(file_bytes(p) for p in files)
        print(f"store: {args.jobs} jobs of {args.lines:,} lines; deleted {len(doomed)}")
        print(f"writer alone:           {summary(baseline)}")
        print(
            f"writer during the prune: {summary(during)}"
            f" (max {max(during) / max(baseline):.1f}x the baseline's max)"
        )
        print(
            f"deleting: {len(doomed) / deleting:.1f} jobs/s ({deleting:.2f} s, each projected);"
            f" returning the space: {reclaiming:.2f} s"
        )
        print(f"bytes on disk: {before:,} -> {after:,} ({after / before:.2f}x)")
        db.close()
        store.close()


if __name__ == "__main__":
    main()
