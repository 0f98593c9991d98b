"""Rebuild benchmark: lines/s replaying the event store into a fresh read model.

Writes an event store of N lines the way running steps write them (StepLogged
events of 1,000 lines with a StepProgress after each, over four step jobs of
one job; half the lines carry fields), then measures in the same run:

- raw sqlite3 insert: the same line rows, prebuilt, inserted with executemany
  into the same table with the same bulk settings and the index built after:
  the ceiling for writing these rows;
- decode only: reading the events and decoding them with the store's mapper;
- ``rebuild_into``: the real rebuild (read, decode, project, index);
- with ``--live``: the live projection runner catching up from zero (200
  notifications per transaction, WAL), which is what a rebuild replaces;
- time travel: ``job_at`` (``GET /api/jobs/{id}/replay``) at 100 random
  positions of the job, median and max, against two baselines of the same
  run: the live query of the job now (``GET /api/jobs/{id}``, the floor) and
  folding every event up to the position (what a replay did before line marks)
  at a few of those positions.

    python bench/replay.py [--lines 1000000] [--live]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from steptrail.domain.aggregates import LEVELS, Manager, StepJob
from steptrail.domain.store import JobStore, StoreLocation
from steptrail.domain.vocabulary import LineField as F
from steptrail.projections.database import SQLiteDatabase
from steptrail.projections.history import select_job_events
from steptrail.projections.notifier import PositionNotifier
from steptrail.projections.queries import Queries
from steptrail.projections.readmodel import ReadModel, create_tables
from steptrail.projections.rebuild import ScratchDatabase, rebuild_into
from steptrail.projections.replay import job_at
from steptrail.projections.runner import ProjectionRunner, read_events
from steptrail.projections.schema import LEVEL_NUMBERS, LINE_COLUMNS, line_id

STEPS = 4
LINES_PER_EVENT = 1000
TARGET = 200_000
TIME_TRAVEL_TARGET_MS = 50.0
POSITIONS = 100  # random positions timed
FOLDED = 5  # of them, also timed the old way (it takes seconds each)


def write_store(store: JobStore, n: int, lines_per_event: int = LINES_PER_EVENT) -> None:
    """One job of STEPS steps logging n lines in all, as the recorder saves them."""
    names = [f"step{i}" for i in range(STEPS)]
    manager = Manager("bench", {"lines": n}, names, 1)
    manager.start("bench")
    store.save(manager)
    ts = time.time()
    for index, name in enumerate(names):
        step = StepJob(str(manager.id), name, index, 1, "bench")
        manager.step_started(str(step.id), name, index, 1)
        store.save(manager, step)
        share = n // STEPS + (1 if index < n % STEPS else 0)
        for first in range(0, share, lines_per_event):
            count = min(lines_per_event, share - first)
            step.log(
                [
                    [
                        ts + (first + i) * 1e-5,
                        LEVELS[(first + i) % 5],
                        f"bench.{name}",
                        f"processed record {first + i} of the batch",
                        orjson.dumps({"record": first + i, "stage": name}).decode()
                        if i % 2 == 0
                        else None,
                    ]
                    for i in range(count)
                ]
            )
            step.report_progress(first + count, share, f"{first + count}/{share}")
            store.save(step)
        step.complete("succeeded")
        manager.step_finished(index, "succeeded")
        store.save(manager, step)
    manager.complete("succeeded")
    store.save(manager)


def raw_insert_rate(rows: list[tuple[object, ...]], path: Path) -> float:
    """The same rows through plain sqlite3: executemany, 100k rows per transaction."""
    db = ScratchDatabase(path)  # same file settings as the rebuild's scratch file
    with db.write() as cur:
        create_tables(cur)
        cur.execute("DROP INDEX lines_by_step")
    db.close()
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ScratchDatabase.pragmas:
        conn.execute(pragma)
    marks = ", ".join("?" * len(LINE_COLUMNS))
    insert = f"INSERT INTO lines ({', '.join(LINE_COLUMNS)}) VALUES ({marks})"
    start = time.perf_counter()
    for i in range(0, len(rows), 100_000):
        conn.execute("BEGIN")
        conn.executemany(insert, rows[i : i + 100_000])
        conn.execute("COMMIT")
    conn.execute("CREATE UNIQUE INDEX lines_by_step ON lines (step_job_id, seq)")
    elapsed = time.perf_counter() - start
    conn.close()
    return len(rows) / elapsed


def line_rows(store: JobStore) -> list[tuple[object, ...]]:
    """Every line as the read model stores it (built outside any timing)."""
    rows: list[tuple[object, ...]] = []
    after = 0
    while events := read_events(store, after, 100):
        after = events[-1][0]
        for position, e in events:
            if isinstance(e, StepJob.StepLogged):
                step_job_id = str(e.originator_id)
                rows += [
                    (
                        line_id(position, i),
                        step_job_id,
                        x[F.SEQ],
                        x[F.TS],
                        LEVEL_NUMBERS[x[F.LEVEL]],
                        x[F.LOGGER],
                        x[F.MESSAGE],
                        x[F.FIELDS],
                        x[F.GROUP],
                        position,
                    )
                    for i, x in enumerate(orjson.loads(e.lines_json))
                ]
    return rows


def decode_rate(store: JobStore, n: int) -> float:
    start = time.perf_counter()
    after = 0
    while events := read_events(store, after, 100):
        after = events[-1][0]
    return n / (time.perf_counter() - start)


def live_runner_rate(store: JobStore, path: Path, n: int) -> float:
    db = SQLiteDatabase(path)
    runner = ProjectionRunner(store, ReadModel(db), PositionNotifier())
    start = time.perf_counter()
    runner.catch_up()
    elapsed = time.perf_counter() - start
    db.close()
    return n / elapsed


def _ms(fn: object, *args: object) -> float:
    start = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return (time.perf_counter() - start) * 1000


def fold_all(store: JobStore, job_id: str, position: int, path: Path) -> None:
    """The old replay: every event of the job up to ``position`` (lines
    included) through the projector into a scratch model, then the query."""
    db = ScratchDatabase(path)
    try:
        model, applied = ReadModel(db), 0
        while True:
            events, _ = select_job_events(store, job_id, applied, 500, position)
            if not events:
                break
            model.apply(applied, events)
            applied = events[-1][0]
        Queries(db, PositionNotifier()).get_job(job_id)
    finally:
        db.close()
        path.unlink()


def time_travel(store: JobStore, live: SQLiteDatabase, directory: Path) -> None:
    with live.read() as cur:
        cur.execute("SELECT job_id FROM jobs")
        job_id = cur.fetchone()["job_id"]
    end = store.recorder.max_notification_id()
    notifier = PositionNotifier(end)
    positions = random.Random(11).sample(range(1, end + 1), POSITIONS)
    queries = Queries(live, notifier)
    floor = statistics.median(_ms(queries.get_job, job_id) for _ in range(POSITIONS))
    times = [_ms(job_at, store, live, notifier, job_id, p) for p in positions]
    median, worst = statistics.median(times), max(times)
    scratch = directory / "fold.sqlite"
    folded = statistics.median(_ms(fold_all, store, job_id, p, scratch) for p in positions[:FOLDED])
    spread = f"median {median:6.1f} ms, max {worst:.1f} ms"
    print(f"time travel, {POSITIONS} random positions   {spread}")
    print(f"  live query of the job now (floor)  median {floor:6.1f} ms ({median / floor:.1f}x)")
    print(f"  folding every event (before)       median {folded:6.1f} ms ({folded / median:.0f}x)")
    verdict = "met" if worst <= TIME_TRAVEL_TARGET_MS else "MISSED"
    print(f"time travel target (max <= {TIME_TRAVEL_TARGET_MS:.0f} ms): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--live", action="store_true", help="also time the live runner")
    args = parser.parse_args()
    n = args.lines

    with tempfile.TemporaryDirectory(prefix="steptrail-bench-replay-") as tmp:
        directory = Path(tmp)
        store = JobStore(StoreLocation(directory / "data"))
        started = time.perf_counter()
        write_store(store, n)
        events = store.recorder.max_notification_id()
        print(f"store: {n:,} lines in {events:,} events ({STEPS} steps),", end=" ")
        print(f"written in {time.perf_counter() - started:.1f} s")

        raw_rate = raw_insert_rate(line_rows(store), directory / "raw.sqlite")
        decoded = decode_rate(store, n)
        start = time.perf_counter()
        rebuilt = rebuild_into(store, directory / "rebuilt.sqlite")
        seconds = time.perf_counter() - start
        with rebuilt.read() as cur:
            cur.execute("SELECT COUNT(*) AS n, MAX(position) AS p FROM lines")
            row = cur.fetchone()
        rebuilt.close()
        assert row["n"] == n, f"rebuild has {row['n']} lines, expected {n}"
        rate = n / seconds

        print(f"raw sqlite3 insert, same rows       {raw_rate:>10,.0f} rows/s")
        print(f"decode only (store mapper)          {decoded:>10,.0f} lines/s")
        print(f"rebuild_into                        {rate:>10,.0f} lines/s  ({seconds:.2f} s)")
        print(f"  ratio to raw sqlite3 insert       {rate / raw_rate:>10.2f}x")
        if args.live:
            live = live_runner_rate(store, directory / "live.sqlite", n)
            print(f"live runner from zero               {live:>10,.0f} lines/s")
            print(f"  rebuild speed-up over the runner  {rate / live:>10.2f}x")
        verdict = "met" if rate >= TARGET else "MISSED"
        print(f"target (>= {TARGET:,} lines/s): {verdict}")
        live_model = SQLiteDatabase(directory / "rebuilt.sqlite")
        time_travel(store, live_model, directory)
        live_model.close()
        store.close()


if __name__ == "__main__":
    main()
