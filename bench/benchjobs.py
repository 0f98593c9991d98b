"""Job definitions the benchmarks run in steptrail's worker processes
(loaded like any ``--jobs`` file)."""

from __future__ import annotations

import logging

from steptrail.domain.context import StepContext
from steptrail.domain.definitions import JobDefinition, Param

MESSAGE = "processed record %d of the batch"


def log_lines(ctx: StepContext) -> None:
    """``lines`` lines through plain logging, as fast as the step can."""
    plain = logging.getLogger("bench.step")
    for i in range(ctx.params["lines"]):
        plain.info(MESSAGE, i)


def burn(ctx: StepContext) -> None:
    """Pure-Python CPU work until cancelled (what a parser or a hash loop does)."""
    x = 0
    while not ctx.cancelled:
        for i in range(100_000):
            x = (x * 31 + i) % 1_000_003


INGEST = JobDefinition.of("ingest", [log_lines], [Param("lines", int, 200_000)])
BURN = JobDefinition.of("burn", [burn])


def fan_child(ctx: StepContext, item: int) -> None:
    """One child of ``fanout``: ``lines`` lines through plain logging."""
    plain = logging.getLogger("bench.child")
    for i in range(ctx.params["lines"]):
        plain.info(MESSAGE, i)


def fan_out(ctx: StepContext) -> None:
    """``children`` children, ``map_concurrency`` at once."""
    ctx.map(fan_child, range(ctx.params["children"]), concurrency=ctx.params["map_concurrency"])


FANOUT = JobDefinition.of(
    "fanout",
    [fan_out],
    [Param("children", int, 2000), Param("lines", int, 10), Param("map_concurrency", int, 8)],
)
