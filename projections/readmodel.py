"""The read model's write side: tables, tracking, and exactly-once batches."""

from __future__ import annotations

from collections.abc import Sequence

from steptrail.projections.database import Database
from steptrail.projections.projector import Positioned, apply_batch
from steptrail.projections.schema import TRACKING_NAME, create_tables, drop_tables


class StaleBatch(RuntimeError):
    """The model moved since the batch was read: another runner applied it."""


class ReadModel:
    """``notify_channel``: on PostgreSQL, each applied batch is announced on this
    channel at commit, so every process can wake its streams and workers."""

    def __init__(self, db: Database, notify_channel: str | None = None) -> None:
        self.db = db
        self.notify_channel = notify_channel
        # Serialises competing runners: a second one waits, then sees the move.
        self._lock_tracking = " FOR UPDATE" if db.dialect == "postgres" else ""
        with db.write() as cur:
            create_tables(cur, db.dialect)

    def position(self) -> int:
        with self.db.read() as cur:
            cur.execute("SELECT position FROM tracking WHERE name = ?", (TRACKING_NAME,))
            row = cur.fetchone()
        return int(row["position"]) if row else 0

    def apply(self, expected_position: int, events: Sequence[Positioned]) -> None:
        """Apply a batch read after ``expected_position``, or nothing at all."""
        with self.db.write() as cur:
            cur.execute(
                f"SELECT position FROM tracking WHERE name = ?{self._lock_tracking}",
                (TRACKING_NAME,),
            )
            row = cur.fetchone()
            if (int(row["position"]) if row else 0) != expected_position:
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
            create_tables(cur, self.db.dialect)
