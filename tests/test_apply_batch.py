"""Batch application, without a server: a batch of events becomes read-model
rows and the tracking position in one transaction, exactly once; an event
that cannot be applied is recorded and the rest of its batch still applied."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.domain import Aggregate

from steptrail.domain.aggregates import SUCCEEDED, Manager, StepJob
from steptrail.projections.database import Row, SQLiteDatabase
from steptrail.projections.projector import Positioned, Undecodable
from steptrail.projections.readmodel import ReadModel, StaleBatch


@pytest.fixture
def model(tmp_path: Path) -> Iterator[ReadModel]:
    db = SQLiteDatabase(tmp_path / "readmodel.sqlite")
    yield ReadModel(db)
    db.close()


def numbered(start: int, *aggregates: Aggregate) -> list[Positioned]:
    """The aggregates' pending events, positioned from ``start`` in the order given."""
    events = [e for a in aggregates for e in a.collect_events()]
    return list(enumerate(events, start))


def rows(model: ReadModel, sql: str, *params: Any) -> list[Row]:
    with model.db.read() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


def a_job() -> tuple[Manager, StepJob]:
    manager = Manager("demo", {"n": 1}, ["extract", "load"])
    manager.start("w1")
    step = StepJob(str(manager.id), "extract", 0, 1, "w1")
    manager.step_started(str(step.id), "extract", 0, 1)
    return manager, step


def test_a_batch_sets_job_step_lines_counts_and_position(model: ReadModel) -> None:
    manager, step = a_job()
    step.log([[1.0, "INFO", "x", "one", None], [1.1, "ERROR", "x", "two", '{"k": 1}']])
    step.complete(SUCCEEDED)
    manager.step_finished(0, SUCCEEDED)
    events = numbered(1, manager, step)
    model.apply(0, events)

    assert model.position() == len(events)
    (job,) = rows(model, "SELECT * FROM jobs")
    assert job["status"] == "running" and job["step_status"] == '["succeeded","pending"]'
    (row,) = rows(model, "SELECT * FROM steps")
    assert (row["status"], row["last_seq"], row["n_info"], row["n_error"]) == (SUCCEEDED, 2, 1, 1)
    lines = rows(model, "SELECT seq, levelno, message, fields FROM lines ORDER BY seq")
    assert lines == [
        {"seq": 1, "levelno": 20, "message": "one", "fields": None},
        {"seq": 2, "levelno": 40, "message": "two", "fields": '{"k": 1}'},
    ]
    assert rows(model, "SELECT * FROM unapplied_events") == []


def test_a_batch_read_before_the_model_moved_is_refused_whole(model: ReadModel) -> None:
    manager, step = a_job()
    first = numbered(1, manager, step)
    model.apply(0, first)
    step.log([[2.0, "INFO", "x", "late", None]])
    with pytest.raises(StaleBatch):
        model.apply(0, numbered(len(first) + 1, step))
    assert model.position() == len(first)
    assert rows(model, "SELECT * FROM lines") == []


def test_an_event_that_cannot_be_applied_is_recorded_and_the_rest_applied(
    model: ReadModel,
) -> None:
    manager, step = a_job()
    orphan = StepJob(str(manager.id), "load", 1, 1, "w1")
    orphan.collect_events()  # its StepStarted never reaches the store
    orphan.log([[1.0, "INFO", "x", "lost", None]])
    step.log([[1.0, "INFO", "x", "kept", None]])
    events = numbered(1, manager, orphan, step)
    undecodable = Undecodable(step.id, 99, "nowhere:Nothing", "cannot decode: KeyError")
    events.append((len(events) + 1, undecodable))
    model.apply(0, events)

    assert model.position() == len(events)
    unapplied = rows(model, "SELECT position, event_type, error FROM unapplied_events")
    assert [(u["position"], u["event_type"]) for u in unapplied] == [
        (4, "StepJob.StepLogged"),
        (len(events), "nowhere:Nothing"),
    ]
    assert "never started" in unapplied[0]["error"]
    assert unapplied[1]["error"] == "cannot decode: KeyError"
    assert [r["message"] for r in rows(model, "SELECT message FROM lines")] == ["kept"]


def test_lines_that_repeat_stored_ones_are_recorded_not_applied(model: ReadModel) -> None:
    manager, step = a_job()
    step.log([[1.0, "INFO", "x", "one", None]])
    events = numbered(1, manager, step)
    model.apply(0, events)
    again = [(len(events) + 1, events[-1][1])]
    model.apply(len(events), again)
    (unapplied,) = rows(model, "SELECT error FROM unapplied_events")
    assert "repeat stored lines" in unapplied["error"]
    assert len(rows(model, "SELECT * FROM lines")) == 1
