"""The read model's write side: tables, tracking, and exactly-once batches."""

from __future__ import annotations

from collections.abc import Sequence

from steptrail.projections.database import Cursor, Database
from steptrail.projections.fanout_schema import create as create_fanout
from steptrail.projections.projector import Positioned, apply_batch
from steptrail.projections.schema import TABLES, TRACKING_NAME, statements


class StaleBatch(RuntimeError):
    """The model moved since the batch was read: another runner applied it."""


def create_tables(cur: Cursor) -> None:
    for statement in statements(cur.dialect):
        cur.execute(statement)
    create_fanout(cur)
    # The tracking row exists from the start, so competing runners lock one row.
    cur.execute(
        "INSERT INTO tracking (name, position) VALUES (?, 0) ON CONFLICT DO NOTHING",
        (TRACKING_NAME,),
    )


def drop_tables(cur: Cursor) -> None:
    for table in reversed(TABLES):
        cur.execute(f"DROP TABLE IF EXISTS {table}")


def tracking_position(cur: Cursor, lock: bool = False) -> int:
    """The position the model in ``cur``'s snapshot reflects; ``lock``: hold
    the tracking row until commit (competing runners wait for it)."""
    cur.execute(
        f"SELECT position FROM tracking WHERE name = ?{cur.dialect.lock_rows if lock else ''}",
        (TRACKING_NAME,),
    )
    row = cur.fetchone()
    return int(row["position"]) if row else 0


class ReadModel:
    """``notify_channel``: on PostgreSQL, each applied batch is announced on this
    channel at commit, so every process can wake its streams and workers."""

    def __init__(self, db: Database, notify_channel: str | None = None) -> None:
        self.db = db
        self.notify_channel = notify_channel
        with db.write() as cur:
            create_tables(cur)

    def position(self) -> int:
        with self.db.read() as cur:
            return tracking_position(cur)

    def apply(self, expected_position: int, events: Sequence[Positioned]) -> None:
        """Apply a batch read after ``expected_position``, or nothing at all."""
        with self.db.write() as cur:
            # Serialises competing runners: a second one waits, then sees the move.
            if tracking_position(cur, lock=True) != expected_position:
                raise StaleBatch(f"read model is no longer at {expected_position}")
            # A runner killed mid-batch used up sequence numbers: number rows
            # as a rebuild does, from the rows there are.
            cur.restore_serials()
            apply_batch(cur, events)
            if self.notify_channel:
                cur.execute("SELECT pg_notify(?, ?)", (self.notify_channel, str(events[-1][0])))

    def reset(self) -> None:
        """Drop every row: the next runner pass replays all events."""
        with self.db.write() as cur:
            drop_tables(cur)
            create_tables(cur)
