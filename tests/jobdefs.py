"""Job definitions the tests run (loaded with ``--jobs tests/jobdefs.py``)."""

from __future__ import annotations

import logging

from domain.context import StepContext
from domain.definitions import JobDefinition, Param

LEVELS = (logging.DEBUG, logging.INFO, logging.INFO, logging.WARNING, logging.ERROR)


def burst(ctx: StepContext) -> None:
    """``lines`` lines as fast as possible, levels cycling through LEVELS; odd
    lines through plain logging, even ones through the step's logger."""
    plain = logging.getLogger("tests.burst")
    n = ctx.params["lines"]
    for i in range(1, n + 1):
        level = LEVELS[i % len(LEVELS)]
        if i % 2:
            plain.log(level, "line %d", i)
        else:
            ctx.log.log(level, "line %d", i, i=i)
        if i % 1000 == 0:
            ctx.progress(i, n)


def drip(ctx: StepContext) -> None:
    """One line every ``interval`` seconds until ``lines`` lines or cancelled."""
    n = ctx.params["lines"]
    for i in range(1, n + 1):
        ctx.log.info("drip %d", i)
        ctx.progress(i, n, f"drip {i}")
        ctx.sleep(ctx.params["interval"])


def done(ctx: StepContext) -> None:
    ctx.log.info("done")


def fails(ctx: StepContext) -> None:
    ctx.log.info("about to fail")
    raise ValueError("this step always fails")


def silent(ctx: StepContext) -> None:
    """Logs nothing for ``seconds``: its heartbeats keep it alive."""
    ctx.sleep(ctx.params["seconds"])


BURST = JobDefinition.of("burst", [burst], [Param("lines", int, 1000)])
DRIP = JobDefinition.of(
    "drip", [drip, done], [Param("lines", int, 100), Param("interval", float, 0.05)]
)
FAILING = JobDefinition.of("failing", [done, fails, ("finish", done)])
SILENT = JobDefinition.of("silent", [silent], [Param("seconds", float, 3.0)])


async def async_fanout(ctx: StepContext) -> None:
    """Lines from asyncio tasks and from a thread started through the context."""
    import asyncio

    async def task(n: int) -> None:
        logging.getLogger("tests.task").info("task %d", n)

    await asyncio.gather(*(task(n) for n in range(5)))
    ctx.thread(lambda: logging.getLogger("tests.thread").warning("from a thread")).join()
    await asyncio.get_running_loop().run_in_executor(
        None, lambda: logging.getLogger("tests.executor").info("from the executor")
    )


ASYNC = JobDefinition.of("async-fanout", [async_fanout])


RETRIED = JobDefinition.of(
    "retried-drip",
    [drip],
    [Param("lines", int, 100), Param("interval", float, 0.05)],
    max_attempts=2,
)


def tricky_fields(ctx: StepContext) -> None:
    """Fields shaped like the event transcoder's type marker, and a non-scalar."""
    ctx.log.info("marker-shaped fields", _type_="uuid_hex", _data_="not-a-uuid")
    ctx.log.info("object field", thing=ValueError("x"))
    ctx.log.info("file %s", "caf\udce9.txt", name="caf\udce9.txt")  # undecodable file name
    ctx.log.info("big number", value=2**70)
    ctx.log.info("nul \x00 byte")


TRICKY = JobDefinition.of("tricky-fields", [tricky_fields])


RELAY = JobDefinition.of(
    "relay",
    [burst, drip, ("again", burst)],
    [Param("lines", int, 500), Param("interval", float, 0.001)],
)


def chatty(ctx: StepContext) -> None:
    """``lines`` lines with a progress report every ``every`` lines: a long
    history of small events."""
    n, every = ctx.params["lines"], ctx.params["every"]
    for i in range(1, n + 1):
        ctx.log.log(LEVELS[i % len(LEVELS)], "line %d", i)
        if i % every == 0:
            ctx.progress(i, n)


CHATTY = JobDefinition.of("chatty", [chatty], [Param("lines", int, 1000), Param("every", int, 10)])
