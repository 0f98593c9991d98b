"""A job's history, read from the event store itself (not the read model).

- :func:`job_events`: the manager's, its step jobs' and their children's
  events in store order, each child's naming its step and index.
- :func:`aggregate_state`: a Manager or StepJob as it was at a version.

The store's recorder finds the events (its SQL, one version per database,
is in domain/recorders.py); this module shapes them for readers. Events are
decoded by the store's mapper, so events written by an older version of an
event class are upcast on the way (see tests/test_upcast.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from steptrail.domain.aggregates import Manager, StepJob, children_of, line_dict
from steptrail.domain.commands import NotFound, get_manager, get_step, parse_id
from steptrail.domain.deletion import deletion_exists, deletion_id_for
from steptrail.domain.store import JobStore
from steptrail.projections.projector import Positioned

_ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic"}


class OutOfRange(ValueError):
    """A version or position the job or step does not have; ``field`` names it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def select_job_events(
    store: JobStore,
    job_id: str,
    after: int,
    limit: int,
    stop: int | None = None,
    skip: Sequence[type] = (),
) -> tuple[list[Positioned], int]:
    """Up to ``limit`` decoded events of the job after ``after`` (and at or
    before ``stop``; events of the ``skip`` classes left out), and ``end``:
    with fewer than ``limit`` events, the answer holds every event of the job
    up to ``end``. Its steps' children are not the job's own (see
    :func:`job_events`)."""
    events, end, _ = _select(store, job_id, after, limit, stop, skip, with_children=False)
    return events, end


def _select(
    store: JobStore,
    job_id: str,
    after: int,
    limit: int,
    stop: int | None,
    skip: Sequence[type],
    with_children: bool,
) -> tuple[list[Positioned], int, set[UUID]]:
    """:func:`select_job_events`, with the children's events too when asked;
    also returns the children's ids.

    The store's end is read BEFORE the manager: a step job is created in the
    same transaction as the manager's StepStarted, so every step job with an
    event at or before that end is in the manager's ``step_job_ids`` (and a
    child, created with its step's ChildrenQueued, in the step's children)."""
    end = store.recorder.max_notification_id() or 0
    if stop is not None:
        end = min(end, stop)
    children: set[UUID] = set()
    try:
        manager = get_manager(store, job_id)
        steps = [UUID(s) for s in manager.step_job_ids]
        if with_children:  # a step's aggregate is its latest snapshot and a few events
            children = {UUID(c) for s in steps for c in children_of(get_step(store, str(s)))}
        ids = [manager.id, *steps, *children]
    except NotFound:
        if not deletion_exists(store, job_id):
            raise
        ids = [deletion_id_for(job_id)]  # what stays of a deleted job
    notifications = store.job_recorder.select_originators(ids, after, end, limit, skip)
    return [(n.id, store.mapper.to_domain_event(n)) for n in notifications], end, children


def _places(
    store: JobStore, events: Sequence[Positioned], children: set[UUID], end: int
) -> dict[UUID, tuple[str, int]]:
    """Each child's step and index, for the children with events in ``events``:
    from its ChildQueued (its first event), in the page or read by itself."""
    places = {
        e.originator_id: (e.parent_step_job_id, e.child_index)
        for _, e in events
        if isinstance(e, StepJob.ChildQueued)
    }
    for child in {e.originator_id for _, e in events} & children - places.keys():
        found = last_event(store, child, StepJob.ChildQueued, end)
        if found is not None:
            places[child] = (found[1].parent_step_job_id, found[1].child_index)
    return places


def last_event(
    store: JobStore, aggregate_id: UUID, event_class: type, stop: int
) -> Positioned | None:
    """The aggregate's latest event of ``event_class`` at or before ``stop``."""
    found = store.job_recorder.last_notification(aggregate_id, event_class, stop)
    return None if found is None else (found.id, store.mapper.to_domain_event(found))


def event_json(
    position: int, event: Any, with_lines: bool = True, place: tuple[str, int] | None = None
) -> dict[str, Any]:
    """One event: where it is, whose it is, and what it says. StepLogged
    lines become objects (or are left out, keeping their seq range and counts).
    ``place``: a child's step and index (null for the job and its steps)."""
    parent, index = place or (None, None)
    aggregate, _, name = type(event).__qualname__.rpartition(".")
    payload = {k: v for k, v in vars(event).items() if k not in _ENVELOPE}
    if isinstance(event, StepJob.StepLogged):
        del payload["lines_json"]  # stored as one JSON text; shown as objects
        if with_lines:
            payload["lines"] = [line_dict(line) for line in event.lines]
    return {
        "position": position,
        "originator_id": str(event.originator_id),
        "aggregate": aggregate,
        "version": event.originator_version,
        "type": name,
        "timestamp": event.timestamp.isoformat(),
        "parent_step_job_id": parent,
        "child_index": index,
        "payload": payload,
    }


def job_events(
    store: JobStore, job_id: str, after: int, limit: int, with_lines: bool = True
) -> dict[str, Any]:
    """A page of the job's history, its steps' children's events included;
    ``next_after`` continues it."""
    events, end, children = _select(store, job_id, after, limit + 1, None, (), with_children=True)
    page, has_more = events[:limit], len(events) > limit
    places = _places(store, page, children, end)
    return {
        "job_id": job_id,
        "events": [event_json(p, e, with_lines, places.get(e.originator_id)) for p, e in page],
        "next_after": page[-1][0] if has_more else max(end, after),
        "has_more": has_more,
    }


def aggregate_state(
    store: JobStore, aggregate_id: str, kind: type[Manager] | type[StepJob], version: int | None
) -> dict[str, Any]:
    """The aggregate as it was at ``version`` (default: now). Raises NotFound
    for an unknown id (or one of another kind), OutOfRange past its end."""
    what = "job" if kind is Manager else "step"
    uid = parse_id(aggregate_id, what)
    last = store.recorder.select_events(uid, desc=True, limit=1)
    if not last:
        raise NotFound(f"no {what} with id {aggregate_id!r}")
    latest = last[0].originator_version
    if version is not None and version > latest:
        raise OutOfRange(
            f"version must be between 1 and {latest} (the {what}'s latest), got {version}",
            "version",
        )
    aggregate: Aggregate = store.repository.get(uid, version=version)
    if not isinstance(aggregate, kind):
        raise NotFound(f"no {what} with id {aggregate_id!r}")
    return {
        "id": str(aggregate.id),
        "type": kind.__name__,
        "version": aggregate.version,
        "latest_version": latest,
        "created_on": aggregate.created_on.isoformat(),
        "modified_on": aggregate.modified_on.isoformat(),
        "state": {k: v for k, v in vars(aggregate).items() if not k.startswith("_")},
    }
