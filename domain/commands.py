"""Commands on jobs: submit, cancel, retry, abandon.

Every change to a Manager goes through :func:`update_manager`, which reloads the
aggregate and retries on a concurrent write, so an API cancel and a worker's
step bookkeeping never overwrite each other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Recording

from steptrail.domain.aggregates import (
    ABANDONED,
    CANCELLED,
    FAILED,
    JOB_FINAL,
    QUEUED,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    Manager,
    StepJob,
    parent_of,
    step_job_id_for,
)
from steptrail.domain.definitions import MASK, DefinitionError, Registry
from steptrail.domain.fanout import close_children
from steptrail.domain.secrets import SecretStore
from steptrail.domain.store import JobStore


class NotFound(LookupError):
    pass


class Conflict(Exception):
    """The command does not apply to the job's current state."""


def parse_id(raw: str, what: str) -> UUID:
    try:
        return UUID(raw)
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"no {what} with id {raw!r}") from None


def saved_position(recordings: Sequence[Recording[Any]]) -> int:
    return max((r.notification.id for r in recordings), default=0)


def get_manager(store: JobStore, job_id: str) -> Manager:
    try:
        manager: Aggregate = store.repository.get(parse_id(job_id, "job"))
    except AggregateNotFoundError:
        raise NotFound(f"no job with id {job_id!r}") from None
    if not isinstance(manager, Manager):
        raise NotFound(f"no job with id {job_id!r}")
    return manager


def get_step(store: JobStore, step_job_id: str) -> StepJob:
    try:
        step: Aggregate = store.repository.get(parse_id(step_job_id, "step"))
    except AggregateNotFoundError:
        raise NotFound(f"no step with id {step_job_id!r}") from None
    if not isinstance(step, StepJob):
        raise NotFound(f"no step with id {step_job_id!r}")
    return step


def update_manager(
    store: JobStore,
    job_id: str,
    change: Callable[[Manager], Sequence[Aggregate]],
    attempts: int = 10,
) -> int:
    """Apply ``change`` to a fresh Manager and save it, with whatever other
    aggregates it returns, in one transaction; on a concurrent write, reload
    and apply again. Returns the store position of the save (0: no change).

    The others' events are stored first: a step's end comes before the job's
    end that it causes, in the store and so in every stream."""
    for _ in range(attempts):
        manager = get_manager(store, job_id)
        others = change(manager)
        try:
            return saved_position(store.save(*others, manager))
        except IntegrityError:
            continue
    raise Conflict(f"job {job_id} is being changed concurrently; try again")


def _secret_params(params: Any, secret: set[str]) -> dict[str, Any]:
    """Exactly the secret params a retry must be given again."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise DefinitionError("params must be a JSON object", "params")
    for name in sorted(set(params) - secret):
        raise DefinitionError(f"param {name!r} cannot be changed by a retry", f"params.{name}")
    for name in sorted(secret - set(params)):
        raise DefinitionError(
            f"secret param {name!r} is forgotten when a job ends; give it again to retry",
            f"params.{name}",
        )
    return dict(params)


def _running_step_id(manager: Manager) -> str | None:
    """The step job the Manager last started and has not recorded an end for
    (a store written before a step's end and the job's record of it were
    saved together can hold one)."""
    for index, status in enumerate(manager.step_status):
        if status == RUNNING:
            return str(step_job_id_for(manager.id, index, manager.step_attempts[index]))
    return None


class JobCommands:
    def __init__(self, store: JobStore, registry: Registry, secrets: SecretStore) -> None:
        self.store = store
        self.registry = registry
        self.secrets = secrets

    def submit(self, definition: Any, params: Any) -> tuple[str, int]:
        """Validate everything first: a bad request writes nothing.
        Returns the new job's id and the store position of its submission.
        Secret params are kept apart (domain/secrets.py): the job's params
        hold ``***`` for them."""
        job = self.registry.get(definition)
        clean = job.validate_params(params)
        secret = job.secret_values(clean)
        shown = {**clean, **dict.fromkeys(secret, MASK)}
        manager = Manager(job.name, shown, job.step_names, job.max_attempts)
        job_id = str(manager.id)
        self.secrets.keep(job_id, secret)
        try:
            return job_id, saved_position(self.store.save(manager))
        except BaseException:
            self.secrets.forget(job_id)
            raise

    def params_to_run(self, manager: Manager) -> dict[str, Any]:
        """The job's params with its secrets' values, for its step's worker only."""
        if MASK not in manager.params.values():
            return dict(manager.params)
        return {**manager.params, **self.secrets.values(str(manager.id))}

    def forget_secrets_if_ended(self, job_id: str) -> None:
        """Secrets live only while their job can still run."""
        manager = get_manager(self.store, job_id)
        if manager.status in JOB_FINAL and MASK in manager.params.values():
            self.secrets.forget(job_id)

    def cancel(self, job_id: str) -> int:
        def change(m: Manager) -> list[Aggregate]:
            if m.status in JOB_FINAL:
                raise Conflict(f"job {job_id} already {m.status}")
            if m.status == QUEUED:
                m.complete(CANCELLED, "cancelled before it started")
            elif not m.cancel_requested:
                m.request_cancel()
            return []

        position = update_manager(self.store, job_id, change)
        self.forget_secrets_if_ended(job_id)
        return position

    def retry(self, job_id: str, params: Any = None) -> int:
        """Queue a failed or cancelled job again. Its secrets were forgotten
        when it ended: a job with secret params needs them given again."""
        manager = get_manager(self.store, job_id)
        job = self.registry.get(manager.definition)
        secret = {p.name for p in job.params if manager.params.get(p.name) == MASK}
        given = _secret_params(params, secret)  # validated before anything is written
        values = {name: job.param(name).coerce(value) for name, value in given.items()}

        def change(m: Manager) -> list[Aggregate]:
            if m.status not in (FAILED, CANCELLED):
                raise Conflict(f"only failed or cancelled jobs can be retried; job is {m.status}")
            m.retry(m.first_unfinished_step(), "retried by user")
            return []

        if not values:
            return update_manager(self.store, job_id, change)
        self.secrets.forget(job_id)  # anything a failed earlier retry left
        self.secrets.keep(job_id, values)
        try:
            return update_manager(self.store, job_id, change)
        except BaseException:
            self.secrets.forget(job_id)
            raise

    def abandon(
        self, job_id: str, step_job_id: str | None, reason: str, changed_before: float
    ) -> None:
        """Close what a dead worker left running: its step is recorded as
        abandoned (its lines stay, under its attempt) and the job is retried
        from that step if attempts remain, else failed.

        The read model that named the step may lag (a projection fail-over, a
        backlog): the aggregates themselves must show no change since
        ``changed_before`` (epoch seconds), or their worker is alive."""
        step: StepJob | None = None
        if step_job_id is None:
            manager = get_manager(self.store, job_id)
            if manager.modified_on.timestamp() >= changed_before:
                return
            step_job_id = _running_step_id(manager)
        if step_job_id is not None:
            step = get_step(self.store, step_job_id)
            if step.status == RUNNING and step.modified_on.timestamp() >= changed_before:
                return
            if parent_of(step) is not None:  # a child: its step decides what it means
                if step.status == RUNNING:
                    step.complete(ABANDONED, reason)
                    with contextlib.suppress(IntegrityError):  # its runner wrote first
                        self.store.save(step)
                return
            if step.status == RUNNING:
                # Its children first: a step ends only after all of its children.
                close_children(self.store, step_job_id, ABANDONED, reason)
                step.complete(ABANDONED, reason)
                try:
                    self.store.save(step)
                except IntegrityError:
                    return  # its worker is alive and wrote first; nothing to close

        def change(m: Manager) -> list[Aggregate]:
            if m.status != RUNNING:
                return []
            if step is not None:
                m.step_finished(step.step_index, step.status)
                if step.status in (SUCCEEDED, SKIPPED):
                    m.retry(m.first_unfinished_step(), "worker lost after the step ended")
                elif step.status == ABANDONED and step.attempt < m.max_attempts:
                    m.retry(step.step_index, f"attempt {step.attempt} {reason}")
                elif step.status == CANCELLED:
                    m.complete(CANCELLED, f"step {step.step_name!r} cancelled")
                else:
                    m.complete(FAILED, f"step {step.step_name!r} {step.status}: {reason}")
            else:
                m.retry(m.first_unfinished_step(), reason)
            return []

        update_manager(self.store, job_id, change)
        self.forget_secrets_if_ended(job_id)
