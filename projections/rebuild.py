"""Rebuild a read model from the event store, compare two read models, and
verify the live one against a rebuild.

A rebuild replays the events through the same projector the live runner uses
(:meth:`ReadModel.apply` -> :func:`projections.projector.apply_batch`), so a
healthy live model and a rebuild are row-for-row identical. Only how the rows
reach the disk differs: a rebuild fills a scratch SQLite file that nobody reads
until it is complete, so it skips the journal and fsyncs, applies large
batches, and builds the secondary indexes once at the end (measured in
``bench/replay.py``).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steptrail.domain.store import JobStore
from steptrail.projections.database import BulkSQLiteCursor, Cursor, Database, SQLiteDatabase
from steptrail.projections.deletion import prefill as prefill_deletions
from steptrail.projections.readmodel import ReadModel, create_tables, tracking_position
from steptrail.projections.runner import read_events
from steptrail.projections.schema import LINE_COLUMNS

# Notifications per transaction. A StepLogged event carries up to ~1000 lines,
# so a batch holds at most ~100k lines in memory.
BULK_BATCH = 100
LINES_PAGE = 10_000  # lines compared per query
MAX_REPORTED = 20  # differences listed per step and kind; the rest are counted


def remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def catch_up(
    store: JobStore, readmodel: ReadModel, until: int | None = None, batch: int = BULK_BATCH
) -> int:
    """Apply stored events to ``readmodel`` up to ``until`` (default: all);
    return the position reached."""
    position = readmodel.position()
    prefill_deletions(store, readmodel.db, position, until)  # numbers as the live model gave them
    while until is None or position < until:
        events = read_events(store, position, batch, until)
        if not events:
            break
        readmodel.apply(position, events)
        position = events[-1][0]
    return position


class ScratchDatabase(SQLiteDatabase):
    """A read model being built where nobody reads it: no journal file and no
    fsync (a crash leaves a broken scratch file, which is only ever thrown away)."""

    cursor_class = BulkSQLiteCursor
    pragmas = (
        "PRAGMA page_size=16384",  # fuller pages for a bulk load (set before any table)
        # Rollback works (savepoints set aside an event that cannot be applied)
        # without writing a journal file.
        "PRAGMA journal_mode=MEMORY",
        "PRAGMA synchronous=OFF",
        "PRAGMA cache_size=-131072",  # 128 MiB: the index pages being filled stay in memory
    )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Decoding creates millions of short-lived containers (a list per line);
    the cyclic collector would scan them over and over (measured: the rebuild
    runs ~20% faster without it). Nothing a rebuild allocates is cyclic."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _drop_secondary_indexes(db: SQLiteDatabase) -> None:
    with db.write() as cur:
        cur.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        for row in cur.fetchall():
            cur.execute(f"DROP INDEX {row['name']}")


def rebuild_into(store: JobStore, path: Path, until: int | None = None) -> SQLiteDatabase:
    """Replay the stored events (up to position ``until``; default all) into
    a fresh SQLite read model at ``path`` and return it, ready to read."""
    remove_sqlite_files(path)
    scratch = ScratchDatabase(path)
    try:
        readmodel = ReadModel(scratch)
        _drop_secondary_indexes(scratch)  # built once at the end: far cheaper
        with _collector_paused():
            catch_up(store, readmodel, until)
        with scratch.write() as cur:
            create_tables(cur)  # the indexes, checking lines are unique
    finally:
        scratch.close()
    return SQLiteDatabase(path)  # an ordinary WAL read model from here on


# comparing


def _rows_by(cur: Cursor, table: str, key: str) -> dict[Any, dict[str, Any]]:
    cur.execute(f"SELECT * FROM {table}")
    return {r[key]: r for r in cur.fetchall()}


def _changed(live: dict[str, Any], rebuilt: dict[str, Any]) -> str:
    """``col (live X, rebuilt Y)`` for each column that differs."""
    return ", ".join(
        f"{c} (live {_short(live.get(c))}, rebuilt {_short(rebuilt.get(c))})"
        for c in sorted(set(live) | set(rebuilt))
        if live.get(c) != rebuilt.get(c)
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _ranges(seqs: list[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7" (at most MAX_REPORTED runs)."""
    runs: list[list[int]] = []
    for s in seqs:
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:MAX_REPORTED])
    return text + (
        f", ... ({len(runs) - MAX_REPORTED} more runs)" if len(runs) > MAX_REPORTED else ""
    )


def _lines(cur: Cursor, step_job_id: str) -> Iterator[dict[str, Any]]:
    """A step's line rows in seq order, a page at a time, with their ids
    (where the store holds them: a rebuild gives each the id it had)."""
    after = -(2**62)
    while True:
        cur.execute(
            f"SELECT {', '.join(LINE_COLUMNS)} FROM lines WHERE step_job_id = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (step_job_id, after, LINES_PAGE),
        )
        rows = cur.fetchall()
        yield from rows
        if len(rows) < LINES_PAGE:
            return
        after = rows[-1]["seq"]


def _compare_lines(live: Cursor, rebuilt: Cursor, step_job_id: str, name: str) -> list[str]:
    """Merge the two seq-ordered streams of one step's lines."""
    missing: list[int] = []
    extra: list[int] = []
    changed: list[str] = []
    a, b = _lines(live, step_job_id), _lines(rebuilt, step_job_id)
    x, y = next(a, None), next(b, None)
    while x is not None or y is not None:
        if x is not None and (y is None or x["seq"] < y["seq"]):
            extra.append(x["seq"])
            x = next(a, None)
        elif y is not None and (x is None or y["seq"] < x["seq"]):
            missing.append(y["seq"])
            y = next(b, None)
        else:
            assert x is not None and y is not None  # the same seq on both sides
            if x != y:
                changed.append(f"{name}: line seq {x['seq']} differs in {_changed(x, y)}")
            x, y = next(a, None), next(b, None)
    out = []
    if missing:
        plural = "line" if len(missing) == 1 else f"{len(missing)} lines"
        out.append(f"{name}: {plural} missing from the live read model: seq {_ranges(missing)}")
    if extra:
        plural = "line" if len(extra) == 1 else f"{len(extra)} lines"
        out.append(f"{name}: {plural} only in the live read model: seq {_ranges(extra)}")
    out += changed[:MAX_REPORTED]
    if len(changed) > MAX_REPORTED:
        out.append(f"{name}: ... and {len(changed) - MAX_REPORTED} more changed lines")
    return out


def _compare_rows(
    kind: str,
    live: dict[Any, dict[str, Any]],
    rebuilt: dict[Any, dict[str, Any]],
    describe: dict[Any, str],
) -> list[str]:
    out = []
    for key in sorted(set(live) | set(rebuilt), key=str):
        name = f"{kind} {key} ({describe[key]})"
        if key not in rebuilt:
            out.append(f"{name}: only in the live read model")
        elif key not in live:
            out.append(f"{name}: missing from the live read model")
        elif live[key] != rebuilt[key]:
            out.append(f"{name}: differs in {_changed(live[key], rebuilt[key])}")
    return out


def compare_cursors(live: Cursor, rebuilt: Cursor) -> list[str]:
    """Differences between two read models, each naming the job or step
    (``step <id> (<name> attempt N): line seq 17 missing ...``)."""
    out = []
    at_live, at_rebuilt = tracking_position(live), tracking_position(rebuilt)
    if at_live != at_rebuilt:
        out.append(f"tracking: live read model at position {at_live}, rebuilt at {at_rebuilt}")
    jobs = _rows_by(live, "jobs", "job_id"), _rows_by(rebuilt, "jobs", "job_id")
    job_names = {k: r["definition"] for rows in jobs for k, r in rows.items()}
    out += _compare_rows("job", *jobs, job_names)
    steps = _rows_by(live, "steps", "step_job_id"), _rows_by(rebuilt, "steps", "step_job_id")
    step_names = {
        k: f"{r['step_name']} attempt {r['attempt']}" for rows in steps for k, r in rows.items()
    }
    out += _compare_rows("step", *steps, step_names)
    with_lines = set()
    for cur in (live, rebuilt):
        cur.execute("SELECT DISTINCT step_job_id FROM lines")
        with_lines |= {r["step_job_id"] for r in cur.fetchall()}
    for step_job_id in sorted(with_lines):
        name = f"step {step_job_id} ({step_names.get(step_job_id, 'no step row')})"
        out += _compare_lines(live, rebuilt, step_job_id, name)
    marks = _marks_by(live), _marks_by(rebuilt)
    mark_names = {
        key: step_names.get(row["step_job_id"], "no step row")
        for rows in marks
        for key, row in rows.items()
    }
    out += _compare_rows("line mark", *marks, mark_names)
    groups = _groups_by(live), _groups_by(rebuilt)
    group_names = {key: row["name"] for rows in groups for key, row in rows.items()}
    out += _compare_rows("line group", *groups, group_names)
    unapplied = _unapplied(live), _unapplied(rebuilt)
    event_types = {k: r["event_type"] for rows in unapplied for k, r in rows.items()}
    out += _compare_rows("unapplied event at position", *unapplied, event_types)
    deletions = _rows_by(live, "deletions", "job_id"), _rows_by(rebuilt, "deletions", "job_id")
    numbers = {
        k: f"#{r['number']} {r['definition']}" for rows in deletions for k, r in rows.items()
    }
    out += _compare_rows("deletion of job", *deletions, numbers)
    return out


def _marks_by(cur: Cursor) -> dict[Any, dict[str, Any]]:
    cur.execute("SELECT * FROM line_marks")
    return {f"{r['step_job_id']} at position {r['position']}": r for r in cur.fetchall()}


def _groups_by(cur: Cursor) -> dict[Any, dict[str, Any]]:
    cur.execute("SELECT * FROM line_groups")
    return {f"{r['step_job_id']} at seq {r['seq']}": r for r in cur.fetchall()}


def _unapplied(cur: Cursor) -> dict[Any, dict[str, Any]]:
    """Events recorded as not applicable, without the error text (its words
    are the database's: PostgreSQL and SQLite say the same thing differently)."""
    cur.execute(
        "SELECT position, originator_id, originator_version, event_type FROM unapplied_events"
    )
    return {r["position"]: r for r in cur.fetchall()}


def compare(live: Database, rebuilt: Database) -> list[str]:
    """Differences between two read models (each read in one snapshot)."""
    with live.read() as a, rebuilt.read() as b:
        return compare_cursors(a, b)


# verifying


@dataclass(frozen=True)
class Verification:
    position: int
    differences: list[str]
    counts: dict[str, int]  # rows per table in the rebuild
    unapplied: int  # stored events the projector recorded as not applicable


def wait_for_position(live: Database, position: int, timeout: float) -> int:
    """The live model's position once it reaches ``position`` (a running
    server catching up), or where it stopped after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with live.read() as cur:
            at = tracking_position(cur)
        if at >= position or time.monotonic() >= deadline:
            return at
        time.sleep(0.05)


def verify(store: JobStore, live: Database, scratch: Path) -> Verification:
    """Compare the live read model with a rebuild at the same position.

    Everything happens inside one read snapshot of the live model, so a live
    model that moves on meanwhile is compared as it was at ``position``."""
    with live.write() as cur:  # tables newer than the model (as a starting server adds them)
        create_tables(cur)
    with live.read() as live_cur:
        position = tracking_position(live_cur)
        rebuilt = rebuild_into(store, scratch, until=position)
        try:
            with rebuilt.read() as rebuilt_cur:
                differences = compare_cursors(live_cur, rebuilt_cur)
                counts = {}
                for table in ("jobs", "steps", "lines", "unapplied_events"):
                    rebuilt_cur.execute(f"SELECT COUNT(*) AS n FROM {table}")
                    counts[table] = int(rebuilt_cur.fetchone()["n"])
        finally:
            rebuilt.close()
            remove_sqlite_files(scratch)
    unapplied = counts.pop("unapplied_events")
    return Verification(position, differences, counts, unapplied)
