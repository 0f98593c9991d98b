"""Ingest benchmark: lines/s from a log call to visible in the read model.

One step logs N lines through plain ``logging``. Baselines on the same lines,
measured in the same run: Python logging to a file, and raw sqlite3 inserts of
the rows (100 rows per transaction). Prints the rates and the ratios.

    python bench/ingest.py [--lines 200000] [--store postgresql://...]
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.runtime import Runtime, Settings
from domain.context import StepContext
from domain.definitions import JobDefinition, Param, Registry
from domain.store import parse_store

MESSAGE = "processed record %d of the batch"


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
    step = "5f0c8a52-2d8e-5a8e-9d0c-1f7a3b2c4d5e"
    start = time.perf_counter()
    for first in range(0, n, 100):
        rows = [
            (step, i + 1, time.time(), 20, "bench", MESSAGE % i, None, first)
            for i in range(first, min(n, first + 100))
        ]
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


def steptrail_rate(n: int, directory: Path, store: str | None) -> tuple[float, float]:
    """Returns (lines/s from the first log call until all are in the read
    model, seconds from the step's end until all are visible)."""
    marks: dict[str, float] = {}

    def log_lines(ctx: StepContext) -> None:
        plain = logging.getLogger("bench.step")
        marks["start"] = time.perf_counter()
        for i in range(ctx.params["lines"]):
            plain.info(MESSAGE, i)
        marks["end"] = time.perf_counter()

    registry = Registry()
    registry.register(JobDefinition.of("ingest", [log_lines], [Param("lines", int, n)]))
    rt = Runtime(
        Settings(parse_store(store, directory / "data"), registry, console=None, concurrency=1)
    )
    rt.start()
    try:
        job_id, _ = rt.commands.submit("ingest", {"lines": n})

        def visible() -> bool:
            job = rt.queries.get_job(job_id)
            return bool(job and job["steps"][0].get("last_seq") == n)

        while not visible():
            rt.notifier.wait(rt.notifier.position, 0.01)
        seen = time.perf_counter()
        return n / (seen - marks["start"]), seen - marks["end"]
    finally:
        rt.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--store", default=None, help="sqlite (default) or postgresql://...")
    args = parser.parse_args()
    n = args.lines
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        file_rate = file_logging_rate(n, directory)
        raw_rate = raw_sqlite_rate(n, directory)
        end_to_end, lag = steptrail_rate(n, directory, args.store)
    store = args.store.split("@")[-1] if args.store else "sqlite file"
    print(f"lines: {n}   store: {store}")
    print(f"python logging to a file      {file_rate:>10,.0f} lines/s")
    print(f"raw sqlite3, 100 rows/txn     {raw_rate:>10,.0f} lines/s")
    print(f"steptrail log call -> read model {end_to_end:>7,.0f} lines/s")
    print(f"  ratio to logging-to-file    {end_to_end / file_rate:>10.2f}x")
    print(f"  ratio to raw sqlite3        {end_to_end / raw_rate:>10.2f}x")
    print(f"  all lines visible {lag * 1000:,.0f} ms after the step ended")
    targets = end_to_end >= 50_000 and end_to_end >= 0.5 * file_rate and lag <= 1.0
    print(
        f"targets (>= 50,000 lines/s, >= 0.5x file, <= 1 s lag): {'met' if targets else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
