"""Event schema evolution: events (and snapshots) written by an older version of
a class are read back in the current shape, on every read path.

How to change an event class without breaking the stored history
(eventsourcing's upcasting; the mapper applies it whenever it decodes):

1. Declare the event class explicitly and hand it to ``@event``, so it can carry
   a version and its upcasters::

       class StepJob(Aggregate):
           class StepProgress(Aggregate.Event):
               class_version = 2  # v1 had no `message`
               current: float
               total: float | None
               message: str

               @staticmethod
               def upcast_v1_v2(state: dict[str, Any]) -> None:
                   state["message"] = ""

           @event(StepProgress)
           def report_progress(self, current, total, message): ...

2. Bump ``class_version`` by one for each change and add
   ``upcast_v<N>_v<N+1>(state)``: it edits the stored dict in place (add a
   default, rename a key, convert a value). Events stored without a version
   are version 1; new events are stored with the current version.
3. Aggregates with snapshots (StepJob) do the same for their own state:
   ``StepJob.class_version`` and ``StepJob.upcast_v1_v2(state)`` upgrade an
   old snapshot's attributes.
4. Never edit stored events; never reuse a topic for a different meaning (a
   renamed class keeps its old topic readable with
   ``eventsourcing.utils.register_topic(old_topic, NewClass)``).

The tests below store v1-shaped data through the recorder, as an older
steptrail would have, and read it back through the current classes (the
version bump is applied with monkeypatch for the test's duration).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import StoredEvent

from steptrail.domain.aggregates import Manager, StepJob
from steptrail.domain.store import JobStore, StoreLocation
from steptrail.projections.history import aggregate_state, job_events
from steptrail.projections.rebuild import rebuild_into
from tests.conftest import LiveServer, start_server, wait_until

PROGRESS_TOPIC = "domain.aggregates:StepJob.StepProgress"


def _message_added_in_v2(state: dict[str, Any]) -> None:
    state["message"] = ""


def _traceback_added_in_v2(state: dict[str, Any]) -> None:
    state["traceback"] = None


@pytest.fixture
def v2_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Today's StepProgress and StepJob, declared as version 2 of themselves."""
    monkeypatch.setattr(StepJob.StepProgress, "class_version", 2, raising=False)
    monkeypatch.setattr(
        StepJob.StepProgress, "upcast_v1_v2", staticmethod(_message_added_in_v2), raising=False
    )
    monkeypatch.setattr(StepJob, "class_version", 2, raising=False)
    monkeypatch.setattr(
        StepJob, "upcast_v1_v2", staticmethod(_traceback_added_in_v2), raising=False
    )


def _store_v1_progress(store: JobStore, step: StepJob, current: int, total: int) -> int:
    """A StepProgress as version 1 stored it: no `message`, no class_version."""
    state = store.mapper.transcoder.encode(
        {"timestamp": datetime.now(UTC), "current": current, "total": total}
    )
    old = StoredEvent(step.id, step.version + 1, PROGRESS_TOPIC, state)
    (position,) = store.recorder.insert_events([old])  # type: ignore[misc]
    return int(position)


@pytest.fixture
def store_with_old_event(tmp_path: Path) -> Iterator[tuple[JobStore, Manager, StepJob]]:
    store = JobStore(StoreLocation(tmp_path / "data"))
    manager = Manager("drip", {}, ["drip"], 1)
    step = StepJob(str(manager.id), "drip", 0, 1, "worker")
    manager.start("worker")
    manager.step_started(str(step.id), "drip", 0, 1)
    store.save(manager, step)
    step.log([[time.time(), "INFO", "tests", "before the upgrade", None]])
    store.save(step)
    _store_v1_progress(store, step, 5, 10)
    try:
        yield store, manager, step
    finally:
        store.close()


def test_without_an_upcaster_the_old_event_cannot_be_read(
    store_with_old_event: tuple[JobStore, Manager, StepJob],
) -> None:
    """What the upcaster is for: today's class cannot apply the v1 shape."""
    store, _, step = store_with_old_event
    with pytest.raises(TypeError, match="message"):
        store.repository.get(step.id)


def test_an_old_event_is_read_in_the_current_shape_everywhere(
    v2_classes: None, store_with_old_event: tuple[JobStore, Manager, StepJob], tmp_path: Path
) -> None:
    store, manager, step = store_with_old_event
    expected = {"current": 5, "total": 10, "message": ""}

    assert store.repository.get(step.id).progress == expected
    assert aggregate_state(store, str(step.id), StepJob, None)["state"]["progress"] == expected
    events = job_events(store, str(manager.id), 0, 100)["events"]
    (old,) = [e for e in events if e["type"] == "StepProgress"]
    assert old["payload"] == expected

    # the projector reads it through the same mapper: rebuilt rows are v2-shaped
    rebuilt = rebuild_into(store, tmp_path / "rebuilt.sqlite")
    try:
        with rebuilt.read() as cur:
            cur.execute("SELECT progress_current, progress_total, progress_message FROM steps")
            assert cur.fetchone() == {
                "progress_current": 5,
                "progress_total": 10,
                "progress_message": "",
            }
    finally:
        rebuilt.close()

    # and the history goes on: a new event lands after the old one, stored as v2
    again = store.repository.get(step.id)
    again.report_progress(6, 10, "after the upgrade")
    store.save(again)
    assert store.repository.get(step.id).progress["message"] == "after the upgrade"


def test_an_old_snapshot_is_upcast_too(
    v2_classes: None, store_with_old_event: tuple[JobStore, Manager, StepJob]
) -> None:
    store, _, step = store_with_old_event
    current = store.repository.get(step.id)
    snapshot = Snapshot.take(current)
    del snapshot.state["traceback"]  # the v1 aggregate had no traceback...
    del snapshot.state["class_version"]  # ...and stored no version
    assert store.snapshots is not None
    store.snapshots.put([snapshot])

    state = aggregate_state(store, str(step.id), StepJob, current.version)["state"]
    assert state["traceback"] is None and state["progress"]["message"] == ""


def test_the_api_serves_old_events_in_the_current_shape(
    v2_classes: None, store_with_old_event: tuple[JobStore, Manager, StepJob], tmp_path: Path
) -> None:
    """A server started on the old store projects and serves the v2 shape."""
    store, manager, step = store_with_old_event
    store.close()
    server: LiveServer = start_server(tmp_path / "data", workers=False)
    try:
        live = wait_until(
            lambda: (
                (s := server.client.get(f"/api/steps/{step.id}").json())["progress"]["total"] and s
            ),
            what="the old progress to be projected",
        )
        assert live["progress"]["message"] == "" and live["progress"]["current"] == 5
        state = server.client.get(f"/api/steps/{step.id}/state").json()
        assert state["state"]["progress"] == {"current": 5, "total": 10, "message": ""}
        page = server.client.get(f"/api/jobs/{manager.id}/events").json()
        assert [e["type"] for e in page["events"]][-1] == "StepProgress"
    finally:
        server.stop()


LOGGED_TOPIC = "domain.aggregates:StepJob.StepLogged"


def test_a_version_1_step_logged_event_reads_back_as_version_2(tmp_path: Path) -> None:
    """StepLogged v1 kept its lines as a list with fields as a dict; v2 keeps
    them as one JSON text. A v1 event in the store is read, projected and
    continued as if it had been written today."""
    store = JobStore(StoreLocation(tmp_path / "data"))
    try:
        manager = Manager("drip", {}, ["drip"], 1)
        step = StepJob(str(manager.id), "drip", 0, 1, "worker")
        manager.start("worker")
        manager.step_started(str(step.id), "drip", 0, 1)
        store.save(manager, step)
        v1_lines = [
            [1, 1700000000.5, "INFO", "tests", "old line", {"k": 1}],
            [2, 1700000001.5, "ERROR", "tests", "old error", None],
        ]
        state = store.mapper.transcoder.encode(
            {
                "timestamp": datetime.now(UTC),
                "first_seq": 1,
                "last_seq": 2,
                "lines": v1_lines,
                "counts": {"INFO": 1, "ERROR": 1},
            }
        )
        store.recorder.insert_events([StoredEvent(step.id, step.version + 1, LOGGED_TOPIC, state)])

        again = store.repository.get(step.id)
        assert (again.last_seq, again.counts["ERROR"]) == (2, 1)
        (old,) = [
            e
            for e in job_events(store, str(manager.id), 0, 100)["events"]
            if e["type"] == "StepLogged"
        ]
        assert [(x["seq"], x["message"], x["fields"]) for x in old["payload"]["lines"]] == [
            (1, "old line", {"k": 1}),
            (2, "old error", {}),
        ]

        again.log([[time.time(), "INFO", "tests", "new line", None]])  # continues at seq 3
        store.save(again)
        rebuilt = rebuild_into(store, tmp_path / "rebuilt.sqlite")
        try:
            with rebuilt.read() as cur:
                cur.execute("SELECT seq, message, fields FROM lines ORDER BY seq")
                assert cur.fetchall() == [
                    {"seq": 1, "message": "old line", "fields": '{"k":1}'},
                    {"seq": 2, "message": "old error", "fields": None},
                    {"seq": 3, "message": "new line", "fields": None},
                ]
        finally:
            rebuilt.close()
    finally:
        store.close()
