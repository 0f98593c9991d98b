"""Runs queued jobs: claims a Manager, runs its steps in order, records outcomes.

Work is found through a :class:`WorkSource` (the read model), but every decision
is taken on the aggregates: a claim is a ManagerStarted saved at the version we
read, so two workers can never run the same job.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from domain.aggregates import (
    ABANDONED,
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    Manager,
    StepJob,
)
from domain.commands import JobCommands, NotFound, get_manager, update_manager
from domain.context import Cancelled, SkipStep, StepContext, current_step
from domain.definitions import DefinitionError, JobDefinition
from domain.steprecorder import ConsoleEcho, Flusher, StepRecorder

log = logging.getLogger("steptrail.orchestrator")
T = TypeVar("T")


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
    def __init__(
        self,
        commands: JobCommands,
        work: WorkSource,
        concurrency: int = 2,
        console: ConsoleEcho | None = None,
        lease_seconds: float = 15.0,
    ) -> None:
        self.commands = commands
        self.store = commands.store
        self.registry = commands.registry
        self.work = work
        self.concurrency = concurrency
        self.console = console
        self.lease_seconds = lease_seconds
        self.worker_id = new_worker_id()
        self.flusher = Flusher()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._taken: set[str] = set()  # jobs this process is claiming or running
        self._cancel_events: dict[str, threading.Event] = {}
        self._threads: list[threading.Thread] = []

    # lifecycle

    def start(self) -> None:
        self.flusher.start()
        for i in range(self.concurrency):
            self._spawn(self._worker_loop, f"steptrail-worker-{i}")
        self._spawn(self._maintenance_loop, "steptrail-maintenance")

    def stop(self, timeout: float = 10.0) -> None:
        """Ask running steps to stop (they are recorded cancelled) and wait."""
        self._stop.set()
        with self._lock:
            for event in self._cancel_events.values():
                event.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.flusher.stop()

    def _spawn(self, target: object, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
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

    def _worker_loop(self) -> None:
        while not self._stop.is_set():
            job_id = self._take_next()
            if job_id is None:
                self.work.wait_for_change(0.25)
                continue
            try:
                self._run_job(job_id)
            except JobLost as e:
                log.warning("%s; leaving it", e)
            except Exception:
                log.exception("job %s stopped unexpectedly", job_id)
            finally:
                with self._lock:
                    self._taken.discard(job_id)
                    self._cancel_events.pop(job_id, None)

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

    def _run_job(self, job_id: str) -> None:
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
        status, error = SUCCEEDED, None
        for index in range(manager.resume_from, len(definition.steps)):
            if cancel_event.is_set() or manager.cancel_requested:
                status, error = CANCELLED, "cancelled"
                break
            step_status, step_error = self._run_step(manager, definition, index, cancel_event)
            if step_status is None:
                return  # lost ownership of the step: whoever took it finishes the job
            manager = get_manager(self.store, job_id)
            if step_status in (FAILED, ABANDONED):
                status, error = (
                    FAILED,
                    f"step {definition.steps[index].name!r} failed: {step_error}",
                )
                break
            if step_status == CANCELLED:
                status, error = CANCELLED, "cancelled"
                break
        update_manager(self.store, job_id, lambda m: self._finish(m, status, error))

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
    ) -> tuple[str | None, str | None]:
        job_id = str(manager.id)
        name = definition.steps[index].name
        step_holder: list[StepJob] = []

        def start(m: Manager) -> list[Aggregate]:
            self._check_owner(m)
            attempt = m.step_attempts[index] + 1
            step = StepJob(job_id, name, index, attempt, self.worker_id)
            m.step_started(str(step.id), name, index, attempt)
            step_holder[:] = [step]
            return [step]

        update_manager(self.store, job_id, start)
        step = step_holder[0]
        recorder = StepRecorder(self.store, step, self.console, self.flusher.wake)
        self.flusher.add(recorder)
        status, error, tb = self._call_step(
            recorder, definition, manager.params, cancel_event, index
        )
        self.flusher.remove(recorder)
        if recorder.lost:
            return None, None
        try:
            recorder.complete(status, error, tb)
        except Exception:
            return None, None
        update_manager(self.store, job_id, lambda m: self._step_finished(m, index, status))
        return status, error

    def _step_finished(self, m: Manager, index: int, status: str) -> list[Aggregate]:
        self._check_owner(m)
        m.step_finished(index, status)
        return []

    def _call_step(
        self,
        recorder: StepRecorder,
        definition: JobDefinition,
        params: dict[str, object],
        cancel_event: threading.Event,
        index: int,
    ) -> tuple[str, str | None, str | None]:
        """Run the step function with this step current, so its logging lands here."""
        fn = definition.steps[index].fn
        token = current_step.set(recorder)
        try:
            ctx = StepContext(recorder, definition.name, dict(params), cancel_event)
            result = fn(ctx)
            if inspect.isawaitable(result):
                asyncio.run(_await(result))
            return SUCCEEDED, None, None
        except Cancelled:
            return CANCELLED, "cancelled", None
        except SkipStep as e:
            return SKIPPED, str(e) or None, None
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
            logging.getLogger(f"{definition.name}.{definition.steps[index].name}").exception(
                "step failed: %s", error
            )
            return FAILED, error, traceback.format_exc()
        finally:
            current_step.reset(token)


class _StepExecutor(ThreadPoolExecutor):
    """The default executor of an async step's loop: ``run_in_executor`` threads
    carry the step's context, so their lines land in the step too."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


async def _await(awaitable: object) -> object:
    asyncio.get_running_loop().set_default_executor(_StepExecutor())
    return await awaitable  # type: ignore[misc]
