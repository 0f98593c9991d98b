"""Runs queued jobs: claims a Manager, runs its steps in order, records outcomes.

Work is found through a :class:`WorkSource` (the read model), but every decision
is taken on the aggregates: a claim is a ManagerStarted saved at the version we
read, so two workers can never run the same job.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Protocol

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from steptrail.domain.aggregates import (
    ABANDONED,
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Manager,
    StepJob,
)
from steptrail.domain.commands import (
    Conflict,
    JobCommands,
    NotFound,
    get_manager,
    get_step,
    update_manager,
)
from steptrail.domain.definitions import DefinitionError, JobDefinition
from steptrail.domain.fanout import close_children
from steptrail.domain.steprun import StepRequest, StepResult
from steptrail.domain.values import describe_exception
from steptrail.domain.worker import WorkerSpec
from steptrail.domain.workerpool import WorkerProcess

log = logging.getLogger("steptrail.orchestrator")
MAX_STORE_RETRY_DELAY = 2.0  # seconds between tries of a save the store refused


def _children_end(step_status: str) -> str:
    """How a step's unended children end when the step ends without them."""
    return CANCELLED if step_status == CANCELLED else ABANDONED


class WorkSource(Protocol):
    """What the orchestrator needs to know about other jobs (from the read model)."""

    def queued_job_ids(self, limit: int) -> list[str]: ...

    def cancel_requested_job_ids(self) -> list[str]: ...

    def stale_running(self, heartbeat_before: float) -> list[tuple[str, str | None]]: ...

    def wait_for_change(self, timeout: float) -> None: ...


class JobLost(Exception):
    """This worker no longer owns the job it was running."""


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Orchestrator:
    """Runs up to ``concurrency`` jobs at once, each step in one of as many
    worker processes (see domain/workerpool.py); every decision about a job
    is taken here, on the aggregates."""

    def __init__(
        self,
        commands: JobCommands,
        work: WorkSource,
        spec: WorkerSpec,
        concurrency: int = 2,
        lease_seconds: float = 15.0,
        cancel_grace: float = 5.0,
        on_saved: Callable[[int], None] = lambda _position: None,
    ) -> None:
        self.commands = commands
        self.store = commands.store
        self.registry = commands.registry
        self.work = work
        self.spec = spec
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.cancel_grace = cancel_grace
        self.on_saved = on_saved
        self.worker_id = new_worker_id()
        self.workers: list[WorkerProcess] = []
        self.store_error: str | None = None  # the last refused save, until one succeeds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._taken: set[str] = set()  # jobs this process is claiming or running
        self._cancel_events: dict[str, threading.Event] = {}
        self._threads: list[threading.Thread] = []

    # lifecycle

    def start(self) -> None:
        for i in range(self.concurrency):
            worker = WorkerProcess(self.spec, f"steptrail-worker-{i}", self.on_saved)
            self.workers.append(worker)
            self._spawn(partial(self._worker_loop, worker), f"steptrail-worker-{i}")
        self._spawn(self._maintenance_loop, "steptrail-maintenance")

    def stop(self) -> None:
        """Ask running steps to stop; after the cancel grace their workers are
        stopped. Steps still running are recorded as interrupted by the stop."""
        self._stop.set()
        deadline = time.monotonic() + self.cancel_grace + 10.0
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        for worker in self.workers:
            worker.stop()

    def health(self) -> dict[str, object]:
        """For /healthz: each worker process, and a save the store refuses."""
        return {
            "workers": [w.describe() for w in self.workers],
            "store_error": self.store_error,
        }

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    # abandonment

    def reap(self, heartbeat_before: float, reason: str) -> int:
        """Abandon what is running without a recent heartbeat (not ours)."""
        reaped = 0
        for job_id, step_job_id in self.work.stale_running(heartbeat_before):
            with self._lock:
                if job_id in self._taken:
                    continue
            try:
                self.commands.abandon(job_id, step_job_id, reason, heartbeat_before)
                reaped += 1
            except NotFound:
                continue
        return reaped

    def cancel_local(self, job_id: str) -> None:
        with self._lock:
            event = self._cancel_events.get(job_id)
        if event is not None:
            event.set()

    # loops

    def _maintenance_loop(self) -> None:
        next_reap = 0.0
        while not self._stop.wait(0.25):
            try:
                for job_id in self.work.cancel_requested_job_ids():
                    self.cancel_local(job_id)
                if time.monotonic() >= next_reap:
                    next_reap = time.monotonic() + max(0.5, self.lease_seconds / 3)
                    self.reap(
                        time.time() - self.lease_seconds, "abandoned: worker stopped heartbeating"
                    )
            except Exception:
                log.exception("maintenance pass failed; will try again")

    def _worker_loop(self, worker: WorkerProcess) -> None:
        while not self._stop.is_set():
            job_id = self._take_next()
            if job_id is None:
                self.work.wait_for_change(0.25)
                continue
            try:
                self._run_job(job_id, worker)
            except JobLost as e:
                log.warning("%s; leaving it", e)
            except Exception:
                log.exception("job %s stopped unexpectedly", job_id)
            finally:
                self._forget_secrets(job_id)
                with self._lock:
                    self._taken.discard(job_id)
                    self._cancel_events.pop(job_id, None)

    def _forget_secrets(self, job_id: str) -> None:
        try:
            self.commands.forget_secrets_if_ended(job_id)
        except Exception:  # kept until the job ends again, or the store answers
            log.exception("could not forget the secrets of job %s", job_id)

    def _take_next(self) -> str | None:
        with self._lock:
            for job_id in self.work.queued_job_ids(limit=self.concurrency * 4):
                if job_id not in self._taken:
                    self._taken.add(job_id)
                    self._cancel_events[job_id] = threading.Event()
                    return job_id
        return None

    # one job

    def _claim(self, job_id: str) -> Manager | None:
        try:
            manager = get_manager(self.store, job_id)
        except NotFound:
            return None
        if manager.status != QUEUED:
            return None
        manager.start(self.worker_id)
        try:
            self.store.save(manager)
        except IntegrityError:
            return None  # another worker claimed it first
        return manager

    def _run_job(self, job_id: str, worker: WorkerProcess) -> None:
        manager = self._claim(job_id)
        if manager is None:
            return
        with self._lock:
            cancel_event = self._cancel_events[job_id]
        try:
            definition = self.registry.get(manager.definition)
        except DefinitionError as e:
            message = str(e)
            update_manager(self.store, job_id, lambda m: self._finish(m, FAILED, message))
            return
        for index in range(manager.resume_from, len(definition.steps)):
            if cancel_event.is_set() or manager.cancel_requested:
                update_manager(
                    self.store, job_id, lambda m: self._finish(m, CANCELLED, "cancelled")
                )
                return
            after = self._run_step(manager, definition, index, cancel_event, worker)
            if after is None or after.status != RUNNING:
                return  # lost the step to another writer, or its outcome ended the job
            manager = after
        update_manager(self.store, job_id, lambda m: self._finish(m, SUCCEEDED, None))

    def _finish(self, m: Manager, status: str, error: str | None) -> list[Aggregate]:
        self._check_owner(m)
        m.complete(status, error)
        return []

    def _check_owner(self, m: Manager) -> None:
        """A job reaped from this worker (lease lost) may run elsewhere now."""
        if m.status != RUNNING or m.worker_id != self.worker_id:
            raise JobLost(f"job {m.id} is no longer run by {self.worker_id}")

    def _run_step(
        self,
        manager: Manager,
        definition: JobDefinition,
        index: int,
        cancel_event: threading.Event,
        worker: WorkerProcess,
    ) -> Manager | None:
        """Run one step; return the job as its outcome left it (None: lost)."""
        job_id = str(manager.id)
        step_def = definition.steps[index]
        step_holder: list[StepJob] = []

        def start(m: Manager) -> list[Aggregate]:
            self._check_owner(m)
            attempt = m.step_attempts[index] + 1
            step = StepJob(job_id, step_def.name, index, attempt, self.worker_id)
            m.step_started(str(step.id), step_def.name, index, attempt)
            step_holder[:] = [step]
            return [step]

        update_manager(self.store, job_id, start)
        step = step_holder[0]
        params = self.commands.params_to_run(manager)
        request = StepRequest(str(step.id), definition.name, index, params)
        timeout = step_def.timeout or definition.timeout
        result = worker.run(request, cancel_event, self._stop, timeout, self.cancel_grace)
        if result.lost:
            return None
        if result.status != SUCCEEDED:  # its process may have left children unended
            close_children(
                self.store, str(step.id), _children_end(result.status), result.error or ""
            )
        retry = result.retryable and step.attempt < definition.max_attempts
        return self._record_outcome(job_id, definition, str(step.id), index, result, retry)

    def _record_outcome(
        self,
        job_id: str,
        definition: JobDefinition,
        step_job_id: str,
        index: int,
        result: StepResult,
        retry: bool,
    ) -> Manager | None:
        """Save the step's StepCompleted, the job's record of it and, when the
        step decides it, the job's end in ONE transaction: no crash can leave
        a finished step that the job does not know about (and would run again).
        A store that refuses the save (disk full) is tried again until it
        takes it; meanwhile ``store_error`` says why (shown by /healthz)."""
        saved: list[Manager] = []

        def change(m: Manager) -> list[Aggregate]:
            self._check_owner(m)
            step = get_step(self.store, step_job_id)
            if step.status != RUNNING:
                raise JobLost(f"step {step.id} was closed by another writer")
            step.complete(result.status, result.error, result.traceback)
            m.step_finished(index, result.status)
            name = definition.steps[index].name
            if retry:  # its worker died: the definition allows another attempt
                m.retry(index, f"attempt {step.attempt} failed: {result.error}")
            elif result.status in (FAILED, ABANDONED):
                m.complete(FAILED, f"step {name!r} failed: {result.error}")
            elif result.status == CANCELLED:
                m.complete(CANCELLED, "cancelled")
            elif index == len(definition.steps) - 1:
                m.complete(SUCCEEDED)
            saved[:] = [m]
            return [step]

        delay = 0.1
        while True:
            try:
                update_manager(self.store, job_id, change)
            except (JobLost, NotFound, Conflict):
                raise
            except Exception as e:
                # The step's end is the one truthful record of it: keep trying
                # (the space may come back) rather than leave it to be reaped
                # later under a cause that is not its own.
                if self.store_error is None:
                    log.exception("could not record the end of step %s", step_job_id)
                self.store_error = describe_exception(e)
                if self._stop.wait(delay):
                    return None  # stopping: the next start closes it
                delay = min(delay * 2, MAX_STORE_RETRY_DELAY)
                continue
            self.store_error = None
            return saved[0]
