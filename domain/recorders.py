"""The event store's recorder, with the reads of a job's history that the
library does not offer, one subclass per database (eventsourcing's own way to
extend a recorder: the application's ``APPLICATION_RECORDER_TOPIC`` names it).

Every SQL statement against the events table lives here, beside the
library's own: nothing else reads the recorder's datastore or table name.
Events may be stored under two topics (see ``aggregates.stored_topics``), so
the reads that filter on topic take event classes and match both.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

import orjson
from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

from steptrail.domain.aggregates import stored_topics

Statement = TypeVar("Statement")  # what the database's driver executes


class EventRemoval(Protocol):
    """One open write transaction on the events: what deleting a job needs."""

    def manager_rows(self, job_id: UUID) -> list[tuple[int, StoredEvent]]:
        """The job's events as (position, stored event), in version order."""

    def append(self, stored: StoredEvent) -> int:
        """Store one event; return its position."""

    def remove(self, ids: Sequence[UUID]) -> None:
        """Remove every event and snapshot of these aggregates."""


class JobRecorder(ABC, Generic[Statement]):
    """What steptrail reads from its event store beyond the library's API;
    a subclass per database writes the statements and reads the rows."""

    def select_originators(
        self,
        originator_ids: Sequence[UUID],
        after: int,
        stop: int,
        limit: int,
        skip: Sequence[type] = (),
    ) -> list[Notification]:
        """Up to ``limit`` notifications of these aggregates after position
        ``after`` and at or before ``stop``, in position order; events of the
        ``skip`` classes left out."""
        skip_topics = [topic for cls in skip for topic in stored_topics(cls)]
        return self._select(*self._originators(originator_ids, after, stop, limit, skip_topics))

    def last_notification(
        self, originator_id: UUID, event_class: type, stop: int
    ) -> Notification | None:
        """The aggregate's latest event of ``event_class`` at or before
        ``stop``: a walk back along its versions (the primary key), stopping
        at the first."""
        found = self._select(*self._last_of(originator_id, stored_topics(event_class), stop))
        return found[0] if found else None

    @property
    @abstractmethod
    def wake_channel(self) -> str | None:
        """The channel a save is announced on (None: saves announce nothing)."""

    @abstractmethod
    def removal(
        self, snapshots_table: str | None, lock_timeout: float
    ) -> AbstractContextManager[EventRemoval]:
        """A write transaction, taken at once and in commit order with the
        library's own saves, that deletes aggregates (domain/deletion.py);
        their snapshots are in ``snapshots_table``."""

    @abstractmethod
    def _originators(
        self, ids: Sequence[UUID], after: int, stop: int, limit: int, skip_topics: list[str]
    ) -> tuple[Statement, Sequence[Any]]: ...

    @abstractmethod
    def _last_of(
        self, originator_id: UUID, topics: Sequence[str], stop: int
    ) -> tuple[Statement, Sequence[Any]]: ...

    def _select(self, statement: Statement, params: Sequence[Any]) -> list[Notification]:
        return [
            Notification(
                id=r["position"],
                originator_id=self._originator_id(r["originator_id"]),
                originator_version=r["originator_version"],
                topic=r["topic"],
                state=bytes(r["state"]),
            )
            for r in self._rows(statement, params)
        ]

    @abstractmethod
    def _rows(self, statement: Statement, params: Sequence[Any]) -> list[Any]:
        """The rows the statement selects: position, originator_id,
        originator_version, topic, state."""

    @abstractmethod
    def _originator_id(self, stored: Any) -> UUID | str: ...


class SQLiteJobRecorder(SQLiteApplicationRecorder, JobRecorder[str]):
    """The position is the events table's rowid."""

    @property
    def wake_channel(self) -> str | None:
        return None  # no subscription in SQLite: savers wake the server themselves

    def _originators(
        self, ids: Sequence[UUID], after: int, stop: int, limit: int, skip_topics: list[str]
    ) -> tuple[str, Sequence[Any]]:
        # The primary key index on (originator_id, originator_version) also
        # holds the rowid, so the inner query sorts only integers and the
        # outer one reads just the page's rows.
        table = self.events_table_name
        not_skipped = "".join(" AND topic <> ?" for _ in skip_topics)
        statement = (
            "SELECT rowid AS position, originator_id, originator_version, topic, state"
            f" FROM {table}"
            f" WHERE rowid IN (SELECT rowid FROM {table} WHERE originator_id IN {_ID_LIST}"
            f"  AND rowid > ? AND rowid <= ?{not_skipped} ORDER BY rowid LIMIT ?) ORDER BY rowid"
        )
        return statement, [_id_list(ids), after, stop, *skip_topics, limit]

    def _last_of(
        self, originator_id: UUID, topics: Sequence[str], stop: int
    ) -> tuple[str, Sequence[Any]]:
        statement = (
            "SELECT rowid AS position, originator_id, originator_version, topic, state"
            f" FROM {self.events_table_name} WHERE originator_id = ? AND rowid <= ?"
            f" AND topic IN ({_marks(topics)}) ORDER BY originator_version DESC LIMIT 1"
        )
        return statement, [originator_id.hex, stop, *topics]

    def _rows(self, statement: str, params: Sequence[Any]) -> list[Any]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, params)
            return list(c.fetchall())

    def _originator_id(self, stored: Any) -> UUID | str:
        return self.convert_originator_id(stored)  # stored as text

    @contextmanager
    def removal(self, snapshots_table: str | None, lock_timeout: float) -> Iterator[EventRemoval]:
        """A connection of its own, so the write lock is taken at BEGIN
        (IMMEDIATE) and held only for this one job."""
        conn = sqlite3.connect(
            self.datastore.pool.db_name, isolation_level=None, timeout=lock_timeout
        )
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteRemoval(conn, self.events_table_name, snapshots_table)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()


class _SQLiteRemoval:
    def __init__(self, conn: sqlite3.Connection, events: str, snapshots: str | None) -> None:
        self.conn = conn
        self.events = events
        self.snapshots = snapshots

    def manager_rows(self, job_id: UUID) -> list[tuple[int, StoredEvent]]:
        rows = self.conn.execute(
            f"SELECT rowid, originator_version, topic, state FROM {self.events}"
            " WHERE originator_id = ? ORDER BY originator_version",
            (job_id.hex,),
        ).fetchall()
        return [(r[0], StoredEvent(job_id, r[1], r[2], r[3])) for r in rows]

    def append(self, stored: StoredEvent) -> int:
        cur = self.conn.execute(
            f"INSERT INTO {self.events} VALUES (?, ?, ?, ?)",
            (
                UUID(str(stored.originator_id)).hex,
                stored.originator_version,
                stored.topic,
                stored.state,
            ),
        )
        return int(cur.lastrowid or 0)

    def remove(self, ids: Sequence[UUID]) -> None:
        for table in (self.events, self.snapshots):
            if table:
                self.conn.execute(
                    f"DELETE FROM {table} WHERE originator_id IN {_ID_LIST}", [_id_list(ids)]
                )


# A list of aggregate ids as ONE parameter (a JSON array): a fan-out's
# thousands of children stay under SQLite's limit on bound parameters.
_ID_LIST = "(SELECT value FROM json_each(?))"


def _id_list(ids: Sequence[UUID]) -> str:
    return orjson.dumps([i.hex for i in ids]).decode()


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


class PostgresJobRecorder(PostgresApplicationRecorder, JobRecorder[SQL]):
    """The position is ``notification_id`` (indexed); saves NOTIFY
    ``channel_name``, which a LISTEN connection turns into a wake-up."""

    @property
    def wake_channel(self) -> str | None:
        return self.channel_name

    def _originators(
        self, ids: Sequence[UUID], after: int, stop: int, limit: int, skip_topics: list[str]
    ) -> tuple[SQL, Sequence[Any]]:
        statement = SQL(
            "SELECT notification_id AS position, originator_id, originator_version, topic, state"
            " FROM {schema}.{table} WHERE originator_id = ANY(%s)"
            " AND notification_id > %s AND notification_id <= %s AND topic <> ALL(%s)"
            " ORDER BY notification_id LIMIT %s"
        )
        return statement, (list(ids), after, stop, skip_topics, limit)

    def _last_of(
        self, originator_id: UUID, topics: Sequence[str], stop: int
    ) -> tuple[SQL, Sequence[Any]]:
        statement = SQL(
            "SELECT notification_id AS position, originator_id, originator_version, topic, state"
            " FROM {schema}.{table} WHERE originator_id = %s AND notification_id <= %s"
            " AND topic = ANY(%s) ORDER BY originator_version DESC LIMIT 1"
        )
        return statement, (originator_id, stop, list(topics))

    def _rows(self, statement: SQL, params: Sequence[Any]) -> list[Any]:
        query = statement.format(
            schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name)
        )
        with self.datastore.transaction(commit=False) as c:
            c.execute(query, params)
            return list(c.fetchall())

    def _originator_id(self, stored: Any) -> UUID | str:
        originator_id: UUID = stored  # psycopg reads a uuid column as a UUID
        return originator_id

    @contextmanager
    def removal(self, snapshots_table: str | None, lock_timeout: float) -> Iterator[EventRemoval]:
        with self.datastore.transaction(commit=True) as cur:
            cur.execute(SQL("SET LOCAL lock_timeout = {}").format(f"{lock_timeout:g}s"))
            removal = _PostgresRemoval(cur, self.datastore.schema, self.events_table_name)
            removal.snapshots = snapshots_table
            # the lock the library's own inserts take, so commit order is
            # position order; and the wake-up its inserts send
            cur.execute(
                SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(removal.table(removal.events))
            )
            cur.execute(SQL("NOTIFY {}").format(Identifier(self.channel_name)))
            yield removal


class _PostgresRemoval:
    def __init__(self, cur: Any, schema: str, events: str) -> None:
        self.cur = cur
        self.schema = schema
        self.events = events
        self.snapshots: str | None = None

    def table(self, name: str) -> Any:
        return SQL("{}.{}").format(Identifier(self.schema), Identifier(name))

    def manager_rows(self, job_id: UUID) -> list[tuple[int, StoredEvent]]:
        self.cur.execute(
            SQL(
                "SELECT notification_id, originator_version, topic, state FROM {}"
                " WHERE originator_id = %s ORDER BY originator_version"
            ).format(self.table(self.events)),
            (job_id,),
        )
        return [
            (
                r["notification_id"],
                StoredEvent(job_id, r["originator_version"], r["topic"], bytes(r["state"])),
            )
            for r in self.cur.fetchall()
        ]

    def append(self, stored: StoredEvent) -> int:
        self.cur.execute(
            SQL(
                "INSERT INTO {} (originator_id, originator_version, topic, state)"
                " VALUES (%s, %s, %s, %s) RETURNING notification_id"
            ).format(self.table(self.events)),
            (stored.originator_id, stored.originator_version, stored.topic, stored.state),
        )
        return int(self.cur.fetchone()["notification_id"])

    def remove(self, ids: Sequence[UUID]) -> None:
        for table in (self.events, self.snapshots):
            if table:
                self.cur.execute(
                    SQL("DELETE FROM {} WHERE originator_id = ANY(%s)").format(self.table(table)),
                    (list(ids),),
                )
