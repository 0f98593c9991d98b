"""A job as the read model showed it at a past store position, at a cost set
by the job's few non-line events, not by its lines.

The job's events up to the position, except its steps' lines and all but the
last progress report of each step, are applied by the live projector to a
scratch read model holding only this job. What the line events left out would
have changed in a step row (last seq, counts by level, heartbeat, position) is
read from the step's mark at the position (projections/marks.py). The live
query then answers from the scratch model, so the replay shows exactly the
counts, progress and statuses the read model had at that position, by
construction rather than by a second implementation.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from steptrail.domain.aggregates import StepJob
from steptrail.domain.store import JobStore
from steptrail.projections.database import Database
from steptrail.projections.history import OutOfRange, last_event, select_job_events
from steptrail.projections.marks import mark_at
from steptrail.projections.notifier import PositionNotifier
from steptrail.projections.projector import Positioned
from steptrail.projections.queries import Queries
from steptrail.projections.readmodel import ReadModel
from steptrail.projections.rebuild import ScratchDatabase
from steptrail.projections.schema import LEVEL_COLUMNS

EVENTS_PER_BATCH = 500
CATCH_UP_SECONDS = 10.0  # how long to wait for the read model to reach the position
# The events, besides StepLogged, that set a step row's heartbeat_at (see the projector).
HEARTBEAT_EVENTS = (StepJob.StepStarted, StepJob.StepProgress)


def _job_events(store: JobStore, job_id: str, position: int) -> tuple[list[Positioned], int]:
    """The job's events up to ``position`` without lines, each step's last
    progress report added; and the store position they are complete up to."""
    skip = (StepJob.StepLogged, StepJob.StepProgress)
    events: list[Positioned] = []
    while True:
        after = events[-1][0] if events else 0
        page, end = select_job_events(store, job_id, after, EVENTS_PER_BATCH, position, skip)
        events += page
        if len(page) < EVENTS_PER_BATCH:
            break
    step_ids = {e.originator_id for _, e in events if isinstance(e, StepJob.StepStarted)}
    for step_id in step_ids:
        progress = last_event(store, step_id, StepJob.StepProgress, position)
        if progress is not None:
            events.append(progress)
    events.sort(key=lambda pe: pe[0])
    return events, end


def _apply_marks(live: Any, scratch: Any, events: Sequence[Positioned], position: int) -> None:
    """Set each step row's line columns as the step's last StepLogged at or
    before ``position`` left them; its heartbeat and position too when that
    event came after every other event that set them."""
    heartbeat_at: dict[str, int] = {}
    for p, e in events:
        if isinstance(e, HEARTBEAT_EVENTS):
            heartbeat_at[str(e.originator_id)] = p
    counts = ", ".join(f"{c} = ?" for c in LEVEL_COLUMNS.values())
    scratch.execute("SELECT step_job_id, position FROM steps")
    for step in scratch.fetchall():
        mark = mark_at(live, step["step_job_id"], position)
        if mark is None:
            continue
        scratch.execute(
            f"UPDATE steps SET last_seq = ?, {counts}, position = ? WHERE step_job_id = ?",
            (
                mark["last_seq"],
                *(mark[c] for c in LEVEL_COLUMNS.values()),
                max(step["position"], mark["position"]),
                step["step_job_id"],
            ),
        )
        if mark["position"] > heartbeat_at.get(step["step_job_id"], 0):
            scratch.execute(
                "UPDATE steps SET heartbeat_at = ? WHERE step_job_id = ?",
                (mark["heartbeat_at"], step["step_job_id"]),
            )


def _wait_for(notifier: PositionNotifier, position: int) -> None:
    """Lines come from the live read model: let it reach ``position`` first."""
    deadline = time.monotonic() + CATCH_UP_SECONDS
    while notifier.position < position and (left := deadline - time.monotonic()) > 0:
        notifier.wait(notifier.position, left)


def job_at(
    store: JobStore, live: Database, notifier: PositionNotifier, job_id: str, position: int
) -> dict[str, Any]:
    """The job (with its steps) at ``position``, in the shape of GET /api/jobs/{id}.

    A step's lines at that position are its lines with ``seq <= last_seq``."""
    events, end = _job_events(store, job_id, position)
    _wait_for(notifier, end)
    with tempfile.TemporaryDirectory(prefix="steptrail-replay-") as tmp:
        db = ScratchDatabase(Path(tmp) / "replay.sqlite")
        try:
            model = ReadModel(db)
            if events:
                model.apply(0, events)
            with live.read() as live_cur, db.write() as scratch_cur:
                _apply_marks(live_cur, scratch_cur, events, position)
            job = Queries(db, PositionNotifier()).get_job(job_id)
        finally:
            db.close()
    if job is None:
        raise OutOfRange(f"job {job_id} did not exist yet at position {position}", "position")
    return {**job, "position": position}
