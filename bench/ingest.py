"""Ingest benchmark: lines/s from a log call to visible in the read model.

One step (in a worker process) logs N lines through plain ``logging``.
Baselines on the same lines, measured in the same run: a logging call whose
handler only appends to a list (the ceiling for logging-based capture), Python
logging to a file, and raw inserts of the rows into the store's database
(sqlite3, 100 rows per transaction; or psycopg ``COPY`` on PostgreSQL).
Prints the rates and the ratios.

    python bench/ingest.py [--lines 200000] [--store postgresql://user@host/db]

With a PostgreSQL store, the run uses a schema of its own and drops it after.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchjobs import MESSAGE
from steptrail.api.runtime import Runtime, Settings
from steptrail.domain.store import parse_store

BENCH_JOBS = str(Path(__file__).resolve().parent / "benchjobs.py")


def file_logging_rate(n: int, directory: Path) -> float:
    logger = logging.getLogger("bench.file")
    logger.propagate = False
    handler = logging.FileHandler(directory / "bench.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    start = time.perf_counter()
    for i in range(n):
        logger.info(MESSAGE, i)
    handler.flush()
    elapsed = time.perf_counter() - start
    logger.removeHandler(handler)
    handler.close()
    return n / elapsed


def raw_sqlite_rate(n: int, directory: Path) -> float:
    conn = sqlite3.connect(directory / "raw.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE lines (line_id INTEGER PRIMARY KEY, step_job_id TEXT, seq INTEGER,"
        " ts REAL, levelno INTEGER, logger TEXT, message TEXT, fields TEXT, position INTEGER)"
    )
    conn.execute("CREATE UNIQUE INDEX lines_by_step ON lines (step_job_id, seq)")
    all_rows = _rows(n)
    start = time.perf_counter()
    for first in range(0, n, 100):
        rows = all_rows[first : first + 100]
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO lines (step_job_id, seq, ts, levelno, logger, message, fields, position)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def _rows(n: int) -> list[tuple[object, ...]]:
    step = "5f0c8a52-2d8e-5a8e-9d0c-1f7a3b2c4d5e"
    return [(step, i + 1, time.time(), 20, "bench", MESSAGE % i, None, i) for i in range(n)]


def raw_copy_rate(n: int, store: str) -> float:
    """psycopg COPY of the same rows into a table shaped like ``lines``."""
    location = parse_store(store, ".")
    rows = _rows(n)
    with psycopg.connect(location.postgres_conninfo(), autocommit=True) as conn:
        schema = location.postgres_params()["schema"]
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')  # type: ignore[arg-type]
        conn.execute(f'SET search_path = "{schema}"')  # type: ignore[arg-type]
        conn.execute(
            "CREATE TABLE raw_lines (line_id BIGSERIAL PRIMARY KEY, step_job_id TEXT, seq BIGINT,"
            " ts DOUBLE PRECISION, levelno BIGINT, logger TEXT, message TEXT, fields TEXT,"
            " position BIGINT)"
        )
        conn.execute("CREATE UNIQUE INDEX raw_lines_by_step ON raw_lines (step_job_id, seq)")
        start = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY raw_lines (step_job_id, seq, ts, levelno, logger, message, fields, position)"
                " FROM STDIN"
            ) as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return n / (time.perf_counter() - start)


def list_append_rate(n: int) -> float:
    """A bare logging call whose handler only appends the record to a list:
    the ceiling for any capture that goes through ``logging``."""

    class ListHandler(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    logger = logging.getLogger("bench.list")
    logger.propagate = False
    handler = ListHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    start = time.perf_counter()
    for i in range(n):
        logger.info(MESSAGE, i)
    elapsed = time.perf_counter() - start
    logger.removeHandler(handler)
    return n / elapsed


def sqlite_bytes(path: Path) -> int:
    """A database file's size once its WAL is checkpointed into it."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in path.parent.glob(f"{path.name}*"))


def steptrail_rate(n: int, directory: Path, store: str | None) -> tuple[float, float]:
    """Returns (lines/s from the first log call until all are in the read
    model, seconds from the step's last line until all are visible). The
    step runs in a worker process; its first and last lines' timestamps
    (stored with them) mark when it logged."""
    settings = Settings(
        parse_store(store, directory / "data"), (BENCH_JOBS,), console=None, concurrency=1
    )
    rt = Runtime(settings)
    rt.start()
    try:
        job_id, _ = rt.commands.submit("ingest", {"lines": n})

        def visible() -> bool:
            job = rt.queries.get_job(job_id)
            return bool(job and job["steps"][0].get("last_seq") == n)

        # Check once per read-model move (not in a spin): the check itself is
        # a query that would compete with the pipeline being measured.
        while not visible():
            rt.notifier.wait(rt.notifier.position, 1.0)
        seen = time.time()
        step_id = rt.queries.get_job(job_id)["steps"][0]["id"]  # type: ignore[index]
        first = rt.queries.step_logs(step_id, 0, 1, None, None)["lines"][0]  # type: ignore[index]
        last = rt.queries.step_logs(step_id, n - 1, 1, None, None)["lines"][0]  # type: ignore[index]
        started, ended = _epoch(first["timestamp"]), _epoch(last["timestamp"])
        return n / (seen - started), seen - ended
    finally:
        rt.stop()


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--store", default=None, help="sqlite (default) or postgresql://...")
    args = parser.parse_args()
    n = args.lines
    store = args.store
    if store:
        store = f"{store.split('?')[0]}?schema=bench_{uuid.uuid4().hex[:8]}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            file_rate = file_logging_rate(n, directory)
            ceiling = list_append_rate(n)
            if store:
                raw_name, raw_rate = "raw psycopg COPY", raw_copy_rate(n, store)
            else:
                raw_name, raw_rate = "raw sqlite3, 100 rows/txn", raw_sqlite_rate(n, directory)
            end_to_end, lag = steptrail_rate(n, directory, store)
            file_per_line = (directory / "bench.log").stat().st_size / n
            stored_per_line = None
            if not store:
                location = parse_store(None, directory / "data")
                stored = sqlite_bytes(location.events_path) + sqlite_bytes(location.readmodel_path)
                stored_per_line = stored / n
    finally:
        if store:
            _drop_schema(store)
    print(f"lines: {n}   store: {'PostgreSQL' if store else 'SQLite files'}")
    print(f"logging to a list (ceiling)     {ceiling:>10,.0f} lines/s")
    print(f"python logging to a file        {file_rate:>10,.0f} lines/s")
    print(f"{raw_name:<32}{raw_rate:>10,.0f} lines/s")
    print(f"steptrail log call -> read model{end_to_end:>10,.0f} lines/s")
    print(f"  ratio to logging-to-a-list    {end_to_end / ceiling:>10.2f}x")
    print(f"  ratio to logging-to-file      {end_to_end / file_rate:>10.2f}x")
    print(f"  ratio to {raw_name:<22}{end_to_end / raw_rate:>10.2f}x")
    print(f"  all lines visible {lag * 1000:,.0f} ms after the step ended")
    print(f"bytes per line: log file        {file_per_line:>10,.0f}")
    if stored_per_line is not None:
        print(f"bytes per line: events + model  {stored_per_line:>10,.0f}")
        print(f"  ratio to the log file         {stored_per_line / file_per_line:>10.2f}x")
    if store:
        met = end_to_end >= 25_000
        print(f"target (>= 25,000 lines/s): {'met' if met else 'MISSED'}")
    else:
        met = end_to_end >= 0.7 * ceiling and end_to_end >= 1.5 * file_rate and lag <= 1.0
        verdict = "met" if met else "MISSED"
        print(f"targets (>= 0.7x list, >= 1.5x file, <= 1 s lag): {verdict}")


def _drop_schema(store: str) -> None:
    location = parse_store(store, ".")
    with psycopg.connect(location.postgres_conninfo(), autocommit=True) as conn:
        schema = location.postgres_params()["schema"]
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
