"""Running one step function, inside a worker process.

The step being run is current (a context variable), so its logging lands in
its recorder. Whatever the function raises, ``SystemExit`` and
``KeyboardInterrupt`` included, becomes this step's outcome and nothing else.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from steptrail.domain.aggregates import CANCELLED, FAILED, SKIPPED, SUCCEEDED
from steptrail.domain.context import Cancelled, SkipStep, StepContext, current_step
from steptrail.domain.definitions import JobDefinition
from steptrail.domain.steprecorder import StepRecorder
from steptrail.domain.values import describe_exception, format_traceback, text

if TYPE_CHECKING:
    from steptrail.domain.fanout import FanOutHost

T = TypeVar("T")


@dataclass(frozen=True)
class StepRequest:
    """What the server asks a worker process to run."""

    step_job_id: str
    definition: str
    index: int
    params: dict[str, Any]


@dataclass(frozen=True)
class StepResult:
    """How a step ended, as its worker process saw it.

    ``retryable``: the step did not end by its own doing (its worker process
    died), so the definition's ``max_attempts`` may run it again."""

    status: str
    error: str | None = None
    traceback: str | None = None
    lost: bool = False  # another writer closed the step: its end is not ours to record
    retryable: bool = False


def run_step(
    recorder: StepRecorder,
    definition: JobDefinition,
    params: dict[str, Any],
    cancel_event: threading.Event,
    index: int,
    host: FanOutHost | None = None,
) -> StepResult:
    """Run the step function, store every line it logged, and say how it ended."""
    for value in definition.secret_values(params).values():
        recorder.masker.add(value)
    status, error, tb = _call(recorder, definition, params, cancel_event, index, host)
    recorder.close()
    if recorder.masker:  # the error and traceback may quote a secret too
        error = recorder.masker.text(error) if error else error
        tb = recorder.masker.text(tb) if tb else tb
    if recorder.lost:
        return StepResult(status, error, tb, lost=True)
    if recorder.failure is not None:  # the store refused its events: that is the cause
        error = recorder.failure
        if recorder.unstored:
            error += f"; {recorder.unstored} line(s) could not be stored"
        return StepResult(FAILED, error)
    return StepResult(status, error, tb)


def _call(
    recorder: StepRecorder,
    definition: JobDefinition,
    params: dict[str, Any],
    cancel_event: threading.Event,
    index: int,
    host: FanOutHost | None = None,
) -> tuple[str, str | None, str | None]:
    step = definition.steps[index]

    def body() -> Any:
        ctx = StepContext(recorder, definition.name, dict(params), cancel_event, host)
        return step.fn(ctx)

    status, error, tb, _ = guarded_call(recorder, body, f"{definition.name}.{step.name}")
    return status, error, tb


def guarded_call(
    recorder: StepRecorder, body: Callable[[], Any], logger_name: str
) -> tuple[str, str | None, str | None, Any]:
    """Call ``body`` as the step of ``recorder`` (its logging lands there) and
    say how it ended: (status, error, traceback, the value it returned)."""
    token = current_step.set(recorder)
    try:
        result = body()
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
        return SUCCEEDED, None, None, result
    except Cancelled:
        return CANCELLED, "cancelled", None, None
    except SkipStep as e:
        return SKIPPED, text(e) or None, None, None
    except BaseException as e:
        error = describe_exception(e)
        logging.getLogger(logger_name).exception("step failed: %s", error)
        return FAILED, error, format_traceback(e), None
    finally:
        current_step.reset(token)


class _StepExecutor(ThreadPoolExecutor):
    """The default executor of an async step's loop: ``run_in_executor`` threads
    carry the step's context, so their lines land in the step too."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


async def _await(awaitable: Any) -> Any:
    asyncio.get_running_loop().set_default_executor(_StepExecutor())
    return await awaitable
