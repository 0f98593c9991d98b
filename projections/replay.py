"""A job as the read model showed it at a past store position.

The job's events up to the position are applied, by the live projector, to a
scratch read model holding only this job; the live query then answers from it.
So the replay shows exactly the counts, progress and statuses the read model
had at that position, by construction rather than by a second implementation.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from domain.store import JobStore
from projections.history import OutOfRange, select_job_events
from projections.notifier import PositionNotifier
from projections.queries import Queries
from projections.readmodel import ReadModel
from projections.rebuild import ScratchDatabase

EVENTS_PER_BATCH = 500


def job_at(store: JobStore, job_id: str, position: int) -> dict[str, Any]:
    """The job (with its steps) at ``position``, in the shape of GET /api/jobs/{id}.

    A step's lines at that position are its lines with ``seq <= last_seq``."""
    with tempfile.TemporaryDirectory(prefix="steptrail-replay-") as tmp:
        db = ScratchDatabase(Path(tmp) / "replay.sqlite")
        try:
            model = ReadModel(db)
            applied = 0
            while True:
                events, _ = select_job_events(store, job_id, applied, EVENTS_PER_BATCH, position)
                if not events:
                    break
                model.apply(applied, events)
                applied = events[-1][0]
            job = Queries(db, PositionNotifier()).get_job(job_id)
        finally:
            db.close()
    if job is None:
        raise OutOfRange(f"job {job_id} did not exist yet at position {position}", "position")
    return {**job, "position": position}
