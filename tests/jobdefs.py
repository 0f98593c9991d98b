"""Job definitions the tests run (loaded with ``--jobs tests/jobdefs.py``)."""

from __future__ import annotations

import logging
import os
import re
import sys
import time

import httpx

from steptrail.domain.context import StepContext
from steptrail.domain.definitions import JobDefinition, Param

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


# Hostile steps: ordinary mistakes of real step code. Each case says how many
# lines its logging calls made; the test checks the step holds exactly those
# (plus the lines steptrail adds and names: a failure's ERROR line, a bad
# progress value's WARNING line).


class RaisingStr:
    def __str__(self) -> str:
        raise RuntimeError("str() of this object raises")


class RaisingBoth(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() raises")

    def __repr__(self) -> str:
        raise RuntimeError("repr() raises")


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr() raises")


NASTY = "nul \x00, lone \udce9 surrogate, C1 \x85\x9b2J, bell \x07, esc \x1b]0;title\x07"


def _bad_progress(ctx: StepContext) -> None:
    ctx.log.info("before bad progress")
    ctx.progress(float("nan"), 10)
    ctx.progress(float("inf"), float("-inf"))
    ctx.progress("3", "ten")  # type: ignore[arg-type]
    ctx.progress(None, None)  # type: ignore[arg-type]
    ctx.progress(5, 10, NASTY)


def _bad_text(ctx: StepContext) -> None:
    plain = logging.getLogger("tests.hostile")
    ctx.log.info(NASTY, **{"field \x00 \udce9": NASTY, "n": float("nan")})
    plain.warning("%s and %r", NASTY, NASTY)
    logging.getLogger("tests.\udce9\x00").error("logger name with a surrogate")


def _bad_logging_calls(ctx: StepContext) -> None:
    log = logging.getLogger("tests.hostile")
    log.info("%d", "x")  # format mismatch
    log.info("%s %s", "one")  # too few arguments
    log.info("%(missing)s", {"a": 1})  # missing key
    log.info(RaisingStr())  # the message itself cannot be made text
    log.info("argument %s", RaisingStr())  # an argument whose str() raises
    ctx.log.info("field whose repr raises", thing=RaisingRepr())
    log.info("fine")


def _raise_surrogate(ctx: StepContext) -> None:
    ctx.log.info("about to raise")
    raise ValueError("cannot open caf\udce9.txt: \x00")


def _raise_unprintable(ctx: StepContext) -> None:
    ctx.log.info("about to raise")
    raise RaisingBoth()


def _sys_exit(ctx: StepContext) -> None:
    ctx.log.info("about to exit")
    sys.exit(3)


def _keyboard_interrupt(ctx: StepContext) -> None:
    ctx.log.info("about to interrupt")
    raise KeyboardInterrupt


HOSTILE_CASES = {
    "bad-progress": _bad_progress,
    "bad-text": _bad_text,
    "bad-logging-calls": _bad_logging_calls,
    "raise-surrogate": _raise_surrogate,
    "raise-unprintable": _raise_unprintable,
    "sys-exit": _sys_exit,
    "keyboard-interrupt": _keyboard_interrupt,
}


def hostile(ctx: StepContext) -> None:
    HOSTILE_CASES[ctx.params["case"]](ctx)


HOSTILE = JobDefinition.of("hostile", [hostile, done], [Param("case", str, "bad-text")])


def many_steps(ctx: StepContext) -> None:
    ctx.log.info("step %d", ctx.step_index)


MANY_STEPS = JobDefinition.of(
    "many-steps", [(f"s{i:03d}", many_steps) for i in range(120)], max_attempts=1
)


def fill_disk(ctx: StepContext) -> None:
    """20 KB lines until the store refuses them (a disk that fills up)."""
    for i in range(5000):
        ctx.log.info("%05d %s", i, "x" * 20_000)
        ctx.check_cancelled()


FILL_DISK = JobDefinition.of("fill-disk", [fill_disk])


HOSTILE_TEXT = '<img src=x onerror="window.__pwned=1">'


def html_text(ctx: StepContext) -> None:
    ctx.log.warning(ctx.params["text"], html=ctx.params["text"])
    ctx.log.info("\x1b[1;31mred\x1b[0m and plain")
    ctx.log.error("first line\nsecond <script>window.__pwned=2</script>")


HTML_TEXT = JobDefinition.of("html-text", [html_text], [Param("text", str, HOSTILE_TEXT)])


def _until_stored(ctx: StepContext, lines: int) -> None:
    """Wait (bounded) until the server's read model holds this step's lines."""
    url = f"{ctx.params['url']}/api/steps/{ctx.step_job_id}"
    for noisy in ("httpx", "httpcore"):  # their request lines would land in this step
        logging.getLogger(noisy).setLevel(logging.WARNING)
    deadline = time.monotonic() + 30
    while httpx.get(url, timeout=5).json()["last_seq"] < lines:
        assert time.monotonic() < deadline, "lines not stored in 30 s"
        time.sleep(0.02)


def misbehave(ctx: StepContext) -> None:
    """What real step code does to its process: crash it, exit it, block it."""
    how = ctx.params["how"]
    for i in range(1, 101):
        ctx.log.info("line %d", i)
    if how == "abort":
        _until_stored(ctx, 100)
        os.abort()  # what a crashing C extension does
    elif how == "exit-first-attempt" and ctx.attempt == 1:
        os._exit(3)
    elif how == "sleep":
        time.sleep(600)  # never reaches a cancellation check
    elif how == "chatter":  # a line every few ms for a minute, never checking
        for i in range(12_000):
            logging.getLogger("tests.chatter").info("chatter %d", i)
            time.sleep(0.005)
    elif how == "hold-the-gil":
        re.match(r"(a+)+$", "a" * 40 + "b")  # backtracks for ages inside one C call


MISBEHAVE = JobDefinition.of(
    "misbehave",
    [misbehave, done],
    [Param("how", str, "sleep"), Param("url", str, "")],
    max_attempts=2,
)
TIMED = JobDefinition.of(
    "timed", [misbehave], [Param("how", str, "sleep"), Param("url", str, "")], timeout=2
)


# Terminal escapes in log text, and what a terminal must be shown instead.
ESCAPE_SEQUENCES = {
    "OSC 0 (window title)": ("\x1b]0;pwned\x07", "␛]0;pwned␇"),
    "OSC 8 (hyperlink)": (
        "\x1b]8;;http://evil.example\x1b\\x\x1b]8;;\x1b\\",
        "␛]8;;http://evil.example␛\\x␛]8;;␛\\",
    ),
    "OSC 52 (clipboard)": ("\x1b]52;c;cm0gLXJm\x07", "␛]52;c;cm0gLXJm␇"),
    "CSI 2J (clear screen)": ("\x1b[2J", "␛[2J"),
    "cursor up": ("\x1b[5A", "␛[5A"),
    "cursor position": ("\x1b[1;1H", "␛[1;1H"),
    "DCS": ("\x1bP1$r\x1b\\", "␛P1$r␛\\"),
    "8-bit CSI": ("\x9b2J", "\\x9b2J"),
    "bare CR": ("safe\rEVIL", "safe␍EVIL"),
    "backspace and bell": ("a\x08\x07", "a␈␇"),
    "DEL": ("x\x7f", "x␡"),
    "SGR with an intermediate is not SGR": ("\x1b[1 m", "␛[1 m"),
}


def escapes(ctx: StepContext) -> None:
    for what, (raw, _) in ESCAPE_SEQUENCES.items():
        ctx.log.info("%s: %s", what, raw)
    ctx.log.info("\x1b[1;31mred\x1b[0m and plain")


ESCAPES = JobDefinition.of("escapes", [escapes])


def _say_hi(ctx: StepContext) -> None:
    ctx.log.info("hi from %s", ctx.step_name)


ODD_NAMES = ["步骤", 'say "hi"; now', "a/b\\c"]
NAMES = JobDefinition.of("odd-names", [(name, _say_hi) for name in ODD_NAMES])


def _colourful(ctx: StepContext) -> None:
    ctx.log.info("\x1b[1;32mgreen\x1b[0m and \x1b[38;2;10;20;30mtrue colour", stage="colour")
    for i in range(50):
        ctx.log.warning("line %d <b>not bold</b>", i, i=i)


COLOURFUL = JobDefinition.of("colourful", [_colourful])


TOKEN = "tok-9f8e7d6c5b4a"  # submitted as the secret param
RUNTIME_SECRET = "rt-s3cr3t-7f2c9a"  # what a step learns while it runs and masks


def secretive(ctx: StepContext) -> None:
    """Logs its secret param and a value it masks itself in every way a
    careless step would: in messages, fields, progress and its error."""
    token = ctx.params["token"]
    if token != TOKEN:
        raise AssertionError("the step did not get its secret")
    ctx.log.info("before")
    ctx.log.info("token is %s", token, token=token, header=f"Bearer {token}")
    logging.getLogger("tests.secret").warning("plain logging: %r", token)
    ctx.progress(1, 3, f"using {token}")
    ctx.mask(RUNTIME_SECRET)
    ctx.log.info("runtime secret %s", RUNTIME_SECRET, nested=RUNTIME_SECRET)
    ctx.log.info("after")
    if ctx.params["fail"]:
        raise RuntimeError(f"could not log in with {token}")


SECRETIVE = JobDefinition.of(
    "secretive",
    [secretive],
    [
        Param("token", str, "", "an API token", secret=True),
        Param("fail", bool, False),
    ],
)


def fan_child(ctx: StepContext, item: int) -> int:
    """3-20 lines, every other one through plain logging; items ``fail_at``
    modulo ``fail_every`` fail; waits ``child_sleep`` (cancellable)."""
    plain = logging.getLogger("tests.fan")
    for i in range(3 + item % 18):
        if i % 2:
            plain.info("item %d line %d", item, i)
        else:
            ctx.log.log(LEVELS[i % len(LEVELS)], "item %d line %d", item, i, item=item)
    if ctx.params["child_sleep"]:
        ctx.sleep(ctx.params["child_sleep"])
    every = ctx.params["fail_every"]
    if every and item % every == every // 2 and ctx.attempt <= ctx.params["fail_attempts"]:
        raise ValueError(f"item {item} fails")
    return item * 2


def fan_out(ctx: StepContext) -> None:
    n = ctx.params["items"]
    results = ctx.map(fan_child, range(n), concurrency=ctx.params["concurrency"])
    ctx.log.info("sum %d", sum(results))


FANOUT = JobDefinition.of(
    "fanout",
    [fan_out, done],
    [
        Param("items", int, 1000),
        Param("concurrency", int, 4),
        Param("fail_every", int, 100),
        Param("fail_attempts", int, 1),
        Param("child_sleep", float, 0.0),
    ],
)


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() of this exception raises")


def hostile_child(ctx: StepContext, item: int) -> object:
    """Careless children: a result that is not JSON, an exception whose str()
    raises, sys.exit, NaN progress; then two that behave."""
    if item == 0:
        return {1, 2}
    if item == 1:
        raise _Unprintable()
    if item == 2:
        sys.exit(3)
    ctx.progress(float("nan"), 10)
    ctx.log.info("child %d is fine", item)
    return item


def fan_out_hostile(ctx: StepContext) -> None:
    ctx.map(hostile_child, range(5), concurrency=2)


FANOUT_HOSTILE = JobDefinition.of("fanout-hostile", [fan_out_hostile, done])

GROUP_SECRET = "::group::s3cret"  # a secret that reads as a group command


def grouped(ctx: StepContext) -> None:
    """Groups from ctx.group and from ::group:: lines, nested, with an error
    inside, and hostile ones: an unbalanced end, a masked command, a huge
    name, nesting deeper than allowed, groups never closed."""
    plain = logging.getLogger("tests.grouped")
    ctx.log.info("before")  # 1
    with ctx.group("install dependencies"):  # 2
        ctx.log.info("pip install")  # 3
        plain.info("::group::nested")  # 4
        plain.error("inner failure")  # 5
        plain.info("::endgroup::")  # 6
        ctx.log.info("after nested")  # 7
    ctx.log.info("top again")  # 8
    plain.info("::endgroup::")  # 9: nothing to close
    ctx.mask(GROUP_SECRET)
    plain.info(GROUP_SECRET)  # 10: masked, opens nothing
    plain.info("::group::" + "n" * 5000)  # 11
    for depth in range(2, 41):
        plain.info("::group::level %d", depth)  # 12..50; groups only to depth 32
    ctx.log.info("deepest")  # 51, never closed


GROUPED = JobDefinition.of("grouped", [grouped])


def build_log(ctx: StepContext) -> None:
    """A 10,000-line build log in groups with known counts, one error inside
    one nested group; with ``tail`` > 0 a last group stays open, a line every
    0.5 s, until the job is cancelled or ``tail`` lines are written."""
    ctx.log.info("build starts")  # 1
    with ctx.group("fetch sources"):  # 2: lines 3..1002
        for i in range(1, 1001):
            ctx.log.info("fetch part %d", i)
    with ctx.group("compile"):  # 1003: lines 1004..5005
        with ctx.group("compile core"):  # 1004: lines 1005..3004
            for i in range(1, 2001):
                ctx.log.info("core unit %d", i)
        with ctx.group("compile plugins"):  # 3005: lines 3006..5005
            for i in range(1, 2001):
                if i == 1316:  # seq 4321
                    ctx.log.error("plugin %d failed to compile", i)
                else:
                    ctx.log.info("plugin unit %d", i)
    with ctx.group("run tests"):  # 5006: lines 5007..9006
        for i in range(1, 4001):
            ctx.log.info("test %d passed", i)
    for i in range(1, 995):  # 9007..10000
        ctx.log.info("summary %d", i)
    if ctx.params["tail"]:
        with ctx.group("deploy"):  # 10001
            for i in range(1, ctx.params["tail"] + 1):
                ctx.log.info("deploy %d", i)
                ctx.sleep(0.5)


BUILD_LOG = JobDefinition.of("build-log", [build_log], [Param("tail", int, 0)])


def ci_build(ctx: StepContext) -> None:
    """A CI run's log in groups, one of them with a retried test's error: the
    README's picture of folded groups."""
    ctx.log.info("build 1.4.2 on runner-7")
    with ctx.group("checkout"):
        for i in range(12):
            ctx.log.info("fetching objects: %d%%", (i + 1) * 100 // 12)
    with ctx.group("install dependencies"):
        for i in range(48):
            ctx.log.info("installed package-%02d", i)
    with ctx.group("lint"):
        for i in range(30):
            ctx.log.debug("checked module_%02d.py", i)
    with ctx.group("test"):
        with ctx.group("unit"):
            for i in range(120):
                ctx.log.info("test_unit_%03d passed", i)
        with ctx.group("integration"):
            for i in range(12):
                ctx.log.info("test_integration_%02d passed", i)
            ctx.log.warning("test_upload slow: 4.8 s")
            ctx.log.error("test_upload failed once: connection reset; retried, passed")
    ctx.log.info("236 tests passed, 1 retried", tests=236, retried=1)
    ctx.log.info("artifact build-1.4.2.tar.gz uploaded")


CI_BUILD = JobDefinition.of("ci-build", [ci_build])


LONG_LINES = 8  # lines 2..9 are long; 10..60 short


def long_lines(ctx: StepContext) -> None:
    """Lines far wider than the log panel, each ending in a word the panel
    cuts off unless it wraps, then short lines: the wrap toggle's log."""
    ctx.log.info("wrap test starts")  # 1
    for k in range(1, LONG_LINES + 1):  # 2..9
        words = " ".join(f"word{k}-{i:03d}" for i in range(90))
        ctx.log.info("long %d: %s END-%d", k, words, k, part=k)
    for i in range(10, 61):  # 10..60
        ctx.log.info("short line %d", i)


LONG_LINES_JOB = JobDefinition.of("long-lines", [long_lines])
