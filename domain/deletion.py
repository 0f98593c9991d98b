"""Deleting an ended job from the event store, leaving a tombstone.

A deletion is ONE event-store transaction: it appends a ``JobDeleted`` event
(on a ``JobDeletion`` aggregate of its own, whose id derives from the job's)
and removes every event and snapshot of the job and its step jobs. So there is
never a store without the job's events and without its tombstone, or the
reverse: a crash leaves either the whole job or its tombstone. The read model
follows by projecting the tombstone (projections/deletion.py): it deletes the
job's rows and keeps a small record of the deletion; a rebuild never sees the
job's events and gets that record from the tombstone.

The tombstone is appended BEFORE the job's events are removed, in the same
transaction. On SQLite a position is the events table's rowid, and SQLite
numbers a new row after the largest one present: removing the newest rows
first would hand a later event a position the projection has already passed.

Whether the job has ended is decided inside the transaction, from its events
(the read model may lag behind a retry): a queued or running job is refused.

The SQL is the event store's recorder's (domain/recorders.py: ``removal``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import StoredEvent

from steptrail.domain.aggregates import JOB_FINAL, Manager, children_of
from steptrail.domain.commands import Conflict, NotFound, parse_id
from steptrail.domain.store import JobStore

LOCK_TIMEOUT_SECONDS = 30


def deletion_id_for(job_id: UUID | str) -> UUID:
    """The tombstone's aggregate id: one per job, so a job is deleted once."""
    return uuid5(UUID(str(job_id)), "deleted")


class JobDeletion(Aggregate):
    """What stays of a deleted job: which job it was and who deleted it when
    (the event's timestamp)."""

    if TYPE_CHECKING:  # made by the @event decorator below; named for the type checker
        JobDeleted: ClassVar[type[Any]]

    @staticmethod
    def create_id(job_id: str, **_: Any) -> UUID:
        return deletion_id_for(job_id)

    @event("JobDeleted")
    def __init__(
        self,
        job_id: str,
        number: int,
        definition: str,
        status: str,
        submitted_at: float,
        submitted_position: int,
        step_job_ids: list[str],
        deleted_by: str,
    ) -> None:
        self.job_id = job_id
        self.number = number
        self.definition = definition
        self.status = status
        self.submitted_at = submitted_at
        self.submitted_position = submitted_position
        self.step_job_ids = step_job_ids
        self.deleted_by = deleted_by


@dataclass(frozen=True)
class Deleted:
    job_id: str
    position: int  # the tombstone's store position


def _manager(store: JobStore, rows: list[tuple[int, StoredEvent]]) -> Manager | None:
    aggregate: Any = None
    for _, stored in rows:
        event: Any = store.mapper.to_domain_event(stored)
        aggregate = event.mutate(aggregate)
    return aggregate if isinstance(aggregate, Manager) else None


def delete_job(
    store: JobStore, job_id: str, number: int, submitted_at: float, deleted_by: str
) -> Deleted:
    """Remove an ended job's events and append its tombstone, in one
    transaction. ``number`` and ``submitted_at`` come from the read model (the
    job's number is the read model's); ``deleted_by`` says by what (``api``,
    ``cli``, ``retention``). Raises NotFound, or Conflict for a job that has
    not ended."""
    uid = parse_id(job_id, "job")
    with store.job_recorder.removal(store.snapshots_table, LOCK_TIMEOUT_SECONDS) as events:
        rows = events.manager_rows(uid)
        manager = _manager(store, rows)
        if manager is None:
            raise NotFound(f"no job with id {job_id!r}")
        if manager.status not in JOB_FINAL:
            raise Conflict(f"job {job_id} is {manager.status}: only an ended job can be deleted")
        tombstone = JobDeletion(
            job_id=str(uid),
            number=number,
            definition=manager.definition,
            status=manager.status,
            submitted_at=submitted_at,
            submitted_position=rows[0][0],
            step_job_ids=list(manager.step_job_ids),
            deleted_by=deleted_by,
        )
        stored = store.mapper.to_stored_event(tombstone.collect_events()[0])
        position = events.append(stored)  # first: see the module docstring
        steps = [UUID(s) for s in manager.step_job_ids]
        # an ended job queues no more children: its steps' lists are final
        children = [UUID(c) for s in steps for c in children_of(store.repository.get(s))]
        events.remove([uid, *steps, *children])
    return Deleted(str(uid), position)


def deletion_exists(store: JobStore, job_id: str) -> bool:
    """Whether the job was deleted (its tombstone is stored)."""
    try:
        uid = parse_id(job_id, "job")
    except NotFound:
        return False
    return bool(store.recorder.select_events(deletion_id_for(uid), limit=1))
