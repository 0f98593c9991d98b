"""The read model's write side: tables, tracking, and exactly-once batches."""

from __future__ import annotations

from collections.abc import Sequence

from projections.database import Database
from projections.projector import TRACKING_NAME, Positioned, apply_batch
from projections.schema import create_tables, drop_tables


class StaleBatch(RuntimeError):
    """The model moved since the batch was read: another runner applied it."""


class ReadModel:
    def __init__(self, db: Database) -> None:
        self.db = db
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
            cur.execute("SELECT position FROM tracking WHERE name = ?", (TRACKING_NAME,))
            row = cur.fetchone()
            if (int(row["position"]) if row else 0) != expected_position:
                raise StaleBatch(f"read model is no longer at {expected_position}")
            apply_batch(cur, events)

    def reset(self) -> None:
        """Drop every row: the next runner pass replays all events."""
        with self.db.write() as cur:
            drop_tables(cur)
            create_tables(cur, self.db.dialect)
