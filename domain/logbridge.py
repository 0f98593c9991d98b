"""The bridge from Python ``logging`` to the running step.

Installed once on the root logger. A record emitted while a step is current
(see :data:`domain.context.current_step`) goes to that step's recorder and
nowhere else; the step's console lines are printed by the recorder after the
lines are stored. Records outside any step go to an ordinary console handler.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from steptrail.domain.aggregates import CLOSES_GROUP
from steptrail.domain.context import current_step
from steptrail.domain.values import (
    MAX_NAME_CHARS,
    cut,
    describe_exception,
    fields_json,
    format_traceback,
    safe_repr,
    safe_str,
    text,
)
from steptrail.domain.vocabulary import (
    ENDGROUP_COMMAND,
    GROUP_COMMAND,
    LEVEL_NAMES,
    MAX_GROUP_NAME,
    level_name,
)


def record_message(record: logging.LogRecord) -> str:
    """The record's message as storable text, whatever the call passed.

    A call whose formatting fails (``log.info("%d", "x")``, too few
    arguments, an argument whose ``str()`` raises) still becomes its line: the
    template, the arguments' safe descriptions and the error, which is what
    Python's own handler prints to stderr when it gives up on a record."""
    try:
        message = record.getMessage()
    except Exception as e:
        args = ", ".join(safe_repr(a) for a in _args(record.args))
        message = (
            f"{safe_str(record.msg)} [logging call failed: {describe_exception(e)};"
            f" arguments: ({args})]"
        )
    if record.exc_info and record.exc_info[1] is not None:
        message += "\n" + format_traceback(record.exc_info[1])
    return text(message)


def group_command(message: str) -> str | int | None:
    """What a (masked) message asks of groups: ``::group::NAME`` opens the
    group NAME (its first line, cut), ``::endgroup::`` closes the innermost one."""
    if message.startswith(GROUP_COMMAND):
        name = message[len(GROUP_COMMAND) :].split("\n", 1)[0].strip()
        return cut(name, MAX_GROUP_NAME)
    if message.strip() == ENDGROUP_COMMAND:
        return CLOSES_GROUP
    return None


def _args(args: object) -> tuple[object, ...]:
    if isinstance(args, tuple):
        return args
    return () if args is None else (args,)


class StepLogHandler(logging.Handler):
    """Sends records made inside a step to that step's recorder, and every other
    record to ``outside`` (the console). One handler on the root logger keeps
    the per-record cost of the hot path to a single dispatch."""

    def __init__(self, capture_level: int, outside: logging.Handler) -> None:
        super().__init__(capture_level)
        self.outside = outside

    def handle(self, record: logging.LogRecord) -> bool:
        # The recorder has its own locking; the handler-wide lock is not needed.
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        recorder = current_step.get()
        if recorder is None:
            if record.levelno >= self.outside.level:
                self.outside.handle(record)
            return
        level = LEVEL_NAMES.get(record.levelno) or level_name(record.levelno)
        name, message = text(record.name, MAX_NAME_CHARS), record_message(record)
        mask = recorder.masker.text if recorder.masker else None
        if mask is not None:  # secrets never reach a stored line
            name, message = mask(name), mask(message)
        fields = fields_json(getattr(record, "fields", None), mask)
        recorder.append(record.created, level, name, message, fields, group_command(message))


def install(capture_level: int = logging.DEBUG, stream: TextIO | None = None) -> StepLogHandler:
    """Route step records to steps and everything else to ``stream`` (stderr).

    The root logger's level is lowered to ``capture_level`` so that plain
    ``logging.getLogger(...).debug(...)`` calls in steps are not dropped before
    they reach the handler; the console keeps INFO for the rest.
    """
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, StepLogHandler):
            root.removeHandler(h)
    console = logging.StreamHandler(stream or sys.stderr)
    console.setLevel(logging.INFO)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(name)s: %(message)s"))
    handler = StepLogHandler(capture_level, console)
    root.addHandler(handler)
    root.setLevel(min(capture_level, logging.INFO))
    return handler
