"""What a running step sees: its identity, params, a logger, progress and
cancellation.

The step being run is held in a context variable, so any ``logging`` call made
in the step's thread, in its asyncio tasks, or in threads it starts with
:meth:`StepContext.thread` is attributed to that step and no other.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from steptrail.domain.values import safe_str, text
from steptrail.domain.vocabulary import MAX_GROUP_NAME

if TYPE_CHECKING:
    from steptrail.domain.fanout import FanOutHost
    from steptrail.domain.steprecorder import StepRecorder

current_step: contextvars.ContextVar[StepRecorder | None] = contextvars.ContextVar(
    "steptrail_current_step", default=None
)

_LOGGING_KWARGS = ("exc_info", "stack_info", "stacklevel", "extra")


class Cancelled(Exception):
    """Raised inside a step by :meth:`StepContext.check_cancelled`."""


class SkipStep(Exception):
    """Raise (or call :meth:`StepContext.skip`) to end a step as skipped."""


class StepLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger whose extra keyword arguments become the line's structured fields:
    ``ctx.log.info("fetched %s", url, status=200)``."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        fields = {k: kwargs.pop(k) for k in list(kwargs) if k not in _LOGGING_KWARGS}
        if fields:
            extra = dict(kwargs.get("extra") or {})
            extra["fields"] = {**extra.get("fields", {}), **fields}
            kwargs["extra"] = extra
        return msg, kwargs


class StepContext:
    """Handed to every step function."""

    def __init__(
        self,
        recorder: StepRecorder,
        definition: str,
        params: dict[str, Any],
        cancel_event: threading.Event,
        host: FanOutHost | None = None,
    ) -> None:
        step = recorder.step
        self.job_id = step.manager_id
        self.step_job_id = str(step.id)
        self.step_name = step.step_name
        self.step_index = step.step_index
        self.attempt = step.attempt
        self.params = params
        self.log = StepLogger(logging.getLogger(f"{definition}.{step.step_name}"), {})
        self._recorder = recorder
        self._cancel_event = cancel_event
        self._definition = definition
        self._host = host

    def progress(self, current: float, total: float | None = None, message: str = "") -> None:
        """Report how far the step is. Values that are not finite numbers are
        not stored (see StepRecorder.progress): the step goes on."""
        self._recorder.progress(current, total, message)

    @contextmanager
    def group(self, name: object) -> Iterator[None]:
        """Lines logged inside the block form a collapsible group: a line
        ``name`` opens it, the end of the block closes it (with no line of
        its own); groups nest. Plain logging does the same with
        ``::group::NAME`` and ``::endgroup::`` lines."""
        label = self._recorder.masker.text(text(name, MAX_GROUP_NAME))
        self._recorder.append(time.time(), "INFO", self.log.logger.name, label, None, label)
        try:
            yield
        finally:
            self._recorder.end_group()

    def mask(self, value: object) -> None:
        """Hide ``value`` (a token, a password) as ``***`` in every line,
        progress message and error this step records from now on."""
        self._recorder.masker.add(safe_str(value))

    @property
    def cancelled(self) -> bool:
        return self._cancel_event.is_set() or self._recorder.stopped

    def check_cancelled(self) -> None:
        if self.cancelled:
            raise Cancelled("cancelled")

    def sleep(self, seconds: float) -> None:
        """Wait, but wake at once and raise Cancelled when the job is cancelled."""
        self._cancel_event.wait(seconds)
        self.check_cancelled()

    def skip(self, reason: str = "") -> None:
        raise SkipStep(reason)

    def map(
        self,
        fn: Callable[..., Any],
        items: Iterable[Any],
        concurrency: int = 4,
        *,
        retries: int = 0,
        max_failures: int = 0,
    ) -> list[Any]:
        """Run ``fn(child_ctx, item)`` for every item as a child step job (its
        own lines, counts, progress and status), at most ``concurrency`` at
        once, and return the results in item order. ``fn`` is a module-level
        function of a jobs module; items and results are JSON values. A child
        that fails is run again up to ``retries`` times; when more than
        ``max_failures`` children fail, the step fails naming them (the
        results of tolerated failures are None). See domain/fanout.py."""
        from steptrail.domain.fanout import FanOut

        if self._host is None:
            raise RuntimeError("ctx.map runs only in a step run by a worker")
        fan_out = FanOut(self._host, self._recorder, self._definition, self.params)
        return fan_out.run(fn, items, concurrency, retries, max_failures, self._cancel_event)

    async def amap(
        self,
        fn: Callable[..., Any],
        items: Iterable[Any],
        concurrency: int = 4,
        *,
        retries: int = 0,
        max_failures: int = 0,
    ) -> list[Any]:
        """:meth:`map` for async steps: the loop goes on while children run."""
        return await asyncio.to_thread(
            self.map, fn, items, concurrency, retries=retries, max_failures=max_failures
        )

    def thread(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
        """Start a thread whose log lines land in this step."""
        context = contextvars.copy_context()
        t = threading.Thread(target=context.run, args=(target, *args), kwargs=kwargs, daemon=True)
        t.start()
        return t
