"""Where SQLite's and PostgreSQL's SQL differ, for the read model.

The read model's SQL is written once, with ``?`` placeholders and portable
syntax; each place where the two databases need different words asks the
:class:`Dialect` of the database it runs on. Nothing else in the package
compares database names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import lru_cache


@lru_cache(maxsize=1024)
def _pyformat(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s``, and a literal ``%`` as ``%%``;
    a ``?`` inside a quoted string stays a question mark. Statements are the
    package's own constants (or built from them), so the cache stays small."""
    parts = sql.replace("%", "%%").split("'")
    # Even parts are outside quotes (an escaped '' only adds an empty part).
    return "'".join(p if i % 2 else p.replace("?", "%s") for i, p in enumerate(parts))


class Dialect(ABC):
    """The words one database needs where the other says it differently."""

    name: str
    serial: str  # an auto-numbered primary key
    real: str
    integer: str
    # Appended to a SELECT that holds its rows until commit.
    lock_rows: str

    @abstractmethod
    def contains(self, column: str) -> str:
        """Case-insensitive substring test of ``column`` against one parameter."""

    @abstractmethod
    def json_items(self, param: str) -> str:
        """A FROM item: the elements of a JSON array parameter, as ``j``."""

    @abstractmethod
    def json_item(self, index: int, sql_type: str | None = None) -> str:
        """Element ``index`` of the array ``j`` (from :meth:`json_items`) as
        ``sql_type`` (None: text)."""

    @abstractmethod
    def json_index(self) -> str:
        """Where ``j`` (from :meth:`json_items`) is in its array, from 0."""


class SQLiteDialect(Dialect):
    name = "sqlite"
    serial = "INTEGER PRIMARY KEY"
    real = "REAL"
    integer = "INTEGER"
    lock_rows = ""  # writers are serialised by the file's lock already

    def contains(self, column: str) -> str:
        return f"instr(lower({column}), lower(?)) > 0"

    def json_items(self, param: str) -> str:
        return f"json_each({param}) j"

    def json_item(self, index: int, sql_type: str | None = None) -> str:
        return f"j.value ->> {index}"  # SQLite's JSON values keep their type

    def json_index(self) -> str:
        return "j.key"


class PostgresDialect(Dialect):
    name = "postgres"
    serial = "BIGSERIAL PRIMARY KEY"
    real = "DOUBLE PRECISION"
    integer = "BIGINT"
    lock_rows = " FOR UPDATE"

    def query(self, sql: str) -> str:
        """A portable statement as psycopg takes it (SQLite's driver takes
        the portable one as it is)."""
        return _pyformat(sql)

    def contains(self, column: str) -> str:
        return f"strpos(lower({column}), lower(?)) > 0"

    def json_items(self, param: str) -> str:
        return f"jsonb_array_elements({param}::jsonb) WITH ORDINALITY AS items (j, n)"

    def json_item(self, index: int, sql_type: str | None = None) -> str:
        return f"(j ->> {index})::{sql_type}" if sql_type else f"j ->> {index}"

    def json_index(self) -> str:
        return "(items.n - 1)"

    def restart_serial(self, table: str, column: str) -> str:
        """A statement making ``table``'s next ``column`` number follow its
        rows, after a rollback (sequences ignore rollbacks) or rows copied
        with their numbers. SQLite numbers a row after the largest one there."""
        return (
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
            f" COALESCE(MAX({column}), 0) + 1, false) FROM {table}"
        )


SQLITE = SQLiteDialect()
POSTGRES = PostgresDialect()
