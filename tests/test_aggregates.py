"""The aggregates' own rules, without any store."""

from __future__ import annotations

from steptrail.domain.aggregates import (
    FAILED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    Manager,
    StepJob,
)


def test_manager_knows_a_step_job_id_the_moment_the_step_starts() -> None:
    m = Manager("demo", {}, ["a", "b"])
    m.start("w1")
    step = StepJob(str(m.id), "a", 0, 1, "w1")
    m.step_started(str(step.id), "a", 0, 1)
    assert m.step_job_ids == [str(step.id)]
    assert m.step_status == [RUNNING, PENDING]


def test_step_job_numbers_lines_consecutively_across_batches() -> None:
    step = StepJob("5b1f6b52-3cf7-4c5f-9d7e-2f4f8c1b1c11", "a", 0, 1, "w1")
    step.log([[1.0, "INFO", "x", "one", None], [1.1, "ERROR", "x", "two", None]])
    step.log([[1.2, "INFO", "x", "three", None]])
    batches = [e for e in step.collect_events() if isinstance(e, StepJob.StepLogged)]
    assert [[line[0] for line in e.lines] for e in batches] == [[1, 2], [3]]
    assert (batches[1].first_seq, batches[1].last_seq) == (3, 3)
    assert step.last_seq == 3
    assert step.counts == {"DEBUG": 0, "INFO": 2, "WARNING": 0, "ERROR": 1, "CRITICAL": 0}


def test_attempts_have_distinct_deterministic_ids() -> None:
    job = "5b1f6b52-3cf7-4c5f-9d7e-2f4f8c1b1c11"
    first, again, second = (StepJob(job, "a", 0, n, "w") for n in (1, 1, 2))
    assert first.id == again.id != second.id


def test_retry_starts_at_the_first_step_that_did_not_succeed() -> None:
    m = Manager("demo", {}, ["a", "b", "c"])
    m.start("w")
    for i, status in enumerate((SUCCEEDED, FAILED)):
        m.step_started(f"id{i}", "x", i, 1)
        m.step_finished(i, status)
    m.complete(FAILED, "b failed")
    assert m.step_status == [SUCCEEDED, FAILED, SKIPPED]
    m.retry(m.first_unfinished_step(), "retried by user")
    assert (m.status, m.resume_from, m.step_status) == ("queued", 1, [SUCCEEDED, PENDING, PENDING])


def test_a_retried_step_cancelled_before_it_ran_is_still_retried() -> None:
    m = Manager("demo", {}, ["a", "b", "c"])
    m.start("w")
    m.step_started("id0", "a", 0, 1)
    m.step_finished(0, SUCCEEDED)
    m.step_started("id1", "b", 1, 1)
    m.step_finished(1, FAILED)
    m.complete(FAILED, "b failed")
    m.retry(m.first_unfinished_step(), "retried by user")
    m.complete("cancelled", "cancelled before it started")  # b: pending -> skipped
    assert m.step_status == [SUCCEEDED, SKIPPED, SKIPPED]
    assert m.first_unfinished_step() == 1


def test_a_step_that_skipped_itself_is_not_run_again() -> None:
    m = Manager("demo", {}, ["a", "b"])
    m.start("w")
    m.step_started("id0", "a", 0, 1)
    m.step_finished(0, SKIPPED)
    m.step_started("id1", "b", 1, 1)
    m.step_finished(1, FAILED)
    m.complete(FAILED, "b failed")
    assert m.first_unfinished_step() == 1
