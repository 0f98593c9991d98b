"""Connections to the read-model database.

SQL in this package is written once, with ``?`` placeholders and portable
syntax; a :class:`Database` runs it on SQLite (the embedded default) or on
PostgreSQL (scale-out), and its :class:`~projections.dialect.Dialect` has the
words where the two differ. Readers get a consistent snapshot per ``read()``, so
the position an answer states is the position its rows reflect.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from steptrail.domain.vocabulary import LEVEL_NUMBERS, LineField
from steptrail.projections.dialect import POSTGRES, SQLITE, Dialect, PostgresDialect
from steptrail.projections.schema import LINE_COLUMNS, SERIALS, insert_lines_sql, line_id

Row = dict[str, Any]


# Errors that come from what an event holds, not from the database failing.
_EVENT_FAULTS = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.DataError,
    psycopg.DataError,
    psycopg.IntegrityError,
    psycopg.ProgrammingError,
)


def is_database_failure(error: Exception) -> bool:
    """Whether ``error`` says the database failed (disk, connection, lock):
    worth trying the same work again later. Any other error while applying an
    event comes from the event, and fails again however often it is tried."""
    if not isinstance(error, sqlite3.Error | psycopg.Error) or isinstance(error, _EVENT_FAULTS):
        return False
    # SQLite reports JSON it cannot read (json_each) as an OperationalError.
    return not (isinstance(error, sqlite3.OperationalError) and "JSON" in str(error))


class Cursor(Protocol):
    @property
    def dialect(self) -> Dialect: ...

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Any: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], /) -> Any: ...

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """The fastest bulk insert the database has."""

    def insert_lines(self, step_job_id: str, position: int, lines_json: str) -> int:
        """Insert a StepLogged event's lines (its ``lines_json``); return how many."""

    def restore_serials(self) -> None:
        """Make the next serial numbers follow the rows again (after a
        rollback, or rows copied with their numbers)."""

    def fetchall(self) -> list[Any]: ...

    def fetchone(self) -> Any: ...


class Database(Protocol):
    @property
    def dialect(self) -> Dialect: ...

    def write(self) -> AbstractContextManager[Cursor]:
        """One transaction, committed on exit."""

    def read(self) -> AbstractContextManager[Cursor]:
        """One consistent snapshot."""

    def close(self) -> None: ...


def _dict_factory(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


class SQLiteCursor(sqlite3.Cursor):
    dialect = SQLITE
    _insert_lines = insert_lines_sql(SQLITE)

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        marks = ", ".join("?" * len(columns))
        self.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def insert_lines(self, step_job_id: str, position: int, lines_json: str) -> int:
        """One statement per event: SQLite unpacks the JSON without holding the
        GIL, so the projection keeps up while running steps keep the interpreter
        busy (row-by-row inserts hand the GIL back and forth on every row)."""
        return int(
            self.execute(self._insert_lines, (position, step_job_id, position, lines_json)).rowcount
        )

    def restore_serials(self) -> None:
        """Nothing to do: SQLite numbers a row after the largest one there."""


class BulkSQLiteCursor(SQLiteCursor):
    """For a rebuild, the only thread at work: binding rows in Python is faster."""

    def insert_lines(self, step_job_id: str, position: int, lines_json: str) -> int:
        level = int(LineField.LEVEL)
        width = len(LineField)  # lines stored before groups are one item shorter
        rows = []
        for index, line in enumerate(orjson.loads(lines_json)):
            line[level] = LEVEL_NUMBERS[line[level]]
            line += [None] * (width - len(line))
            rows.append((line_id(position, index), step_job_id, *line[:width], position))
        self.insert_rows("lines", LINE_COLUMNS, rows)
        return len(rows)


class SQLiteDatabase:
    """A read-model file: one writer connection, one reader per thread."""

    dialect = SQLITE
    cursor_class: type[SQLiteCursor] = SQLiteCursor
    # A crash may lose the last commits of the read model, never of the
    # event store; the tracking row goes back with them, so replay fills in.
    pragmas: tuple[str, ...] = (
        "PRAGMA auto_vacuum=INCREMENTAL",  # takes effect in a new file: deletions give space back
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
    )

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._writer = self._connect()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.row_factory = _dict_factory
        for pragma in self.pragmas:
            conn.execute(pragma)
        return conn

    @contextmanager
    def write(self) -> Iterator[SQLiteCursor]:
        with self._write_lock:
            cur = self._writer.cursor(self.cursor_class)
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[SQLiteCursor]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._readers_lock:
                self._readers.append(conn)
        cur = conn.cursor(self.cursor_class)
        cur.execute("BEGIN")
        try:
            yield cur
        finally:
            cur.execute("COMMIT")

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        with self._write_lock:
            self._writer.close()


class _PostgresCursor:
    """Runs the package's portable SQL on psycopg."""

    dialect: PostgresDialect = POSTGRES
    _insert_lines = insert_lines_sql(POSTGRES)

    def __init__(self, cur: psycopg.Cursor[Row]) -> None:
        self._cur = cur

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Any:
        return self._cur.execute(self.dialect.query(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], /) -> Any:
        return self._cur.executemany(self.dialect.query(sql), rows)

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        copy_in = self.dialect.query(f"COPY {table} ({', '.join(columns)}) FROM STDIN")
        with self._cur.copy(copy_in) as copy:
            for row in rows:
                copy.write_row(row)

    def insert_lines(self, step_job_id: str, position: int, lines_json: str) -> int:
        """One statement per event: the server unpacks the JSON."""
        return int(
            self.execute(self._insert_lines, (position, step_job_id, position, lines_json)).rowcount
        )

    def restore_serials(self) -> None:
        """Set each sequence to follow its table's rows (the caller holds the
        model's write lock, so no other writer numbers rows)."""
        for table, column in SERIALS:
            self.execute(self.dialect.restart_serial(table, column))

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()

    def fetchone(self) -> Any:
        return self._cur.fetchone()


class PostgresDatabase:
    """A read model in one PostgreSQL schema, shared by every process."""

    dialect = POSTGRES

    def __init__(self, conninfo: str, schema: str, max_size: int = 10) -> None:
        self.conninfo = conninfo
        self.schema = schema
        self.pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_size,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "options": f"-c search_path={schema}",
            },
            open=True,
        )

    @contextmanager
    def write(self) -> Iterator[_PostgresCursor]:
        with self.pool.connection() as conn, conn.transaction():
            yield _PostgresCursor(conn.cursor())

    @contextmanager
    def read(self) -> Iterator[_PostgresCursor]:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield _PostgresCursor(conn.cursor())

    def close(self) -> None:
        self.pool.close()
