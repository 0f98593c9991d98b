"""The event store's recorder, with the reads of a job's history that the
library does not offer, one subclass per database (eventsourcing's own way to
extend a recorder: the application's ``APPLICATION_RECORDER_TOPIC`` names it).

Every SQL statement against the events table lives here, beside the
library's own: nothing else reads the recorder's datastore or table name.
Events may be stored under two topics (see ``aggregates.stored_topics``), so
the reads that filter on topic take event classes and match both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Generic, TypeVar
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

from steptrail.domain.aggregates import stored_topics

Statement = TypeVar("Statement")  # what the database's driver executes


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
            f" WHERE rowid IN (SELECT rowid FROM {table} WHERE originator_id IN ({_marks(ids)})"
            f"  AND rowid > ? AND rowid <= ?{not_skipped} ORDER BY rowid LIMIT ?) ORDER BY rowid"
        )
        return statement, [*(i.hex for i in ids), after, stop, *skip_topics, limit]

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
