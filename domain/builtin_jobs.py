"""Definitions that ship with steptrail: ``demo`` and ``index-files``."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from steptrail.domain.context import StepContext
from steptrail.domain.definitions import JobDefinition, Param, Registry
from steptrail.domain.vocabulary import LEVEL_NUMBERS

# (level, weight): the default mix of the demo's lines
DEFAULT_MIX = "debug:2,info:12,warning:3,error:1"
_LEVELS = {name.lower(): number for name, number in LEVEL_NUMBERS.items()}


# Bounds on the demo's params: each is what a demo can sensibly use, and keeps
# one submitted job from taking the server's memory or a worker forever.
MAX_LINES = 1_000_000
MAX_RATE = 1_000_000.0
MAX_MIX_WEIGHT = 1000  # the pattern is expanded in memory: a weight is a list length
# What a mix looks like, for the form to check as it is typed (the weights'
# sum is left to _parse_mix).
_LEVEL_NAMES = "debug|info|warning|error|critical"
MIX_PATTERN = rf" *({_LEVEL_NAMES})(:[0-9]+)? *(, *({_LEVEL_NAMES})(:[0-9]+)? *)*"


def _parse_mix(mix: str) -> list[int]:
    """``"info:3,error:1"`` -> [INFO, INFO, INFO, ERROR]: a repeating pattern."""
    parts = []
    for part in mix.split(","):
        name, _, weight = part.strip().partition(":")
        if name.lower() not in _LEVELS:
            raise ValueError(f"has an unknown level {name[:40]!r}; levels: {', '.join(_LEVELS)}")
        if not (weight or "1").isdigit() or int(weight or 1) < 1:
            raise ValueError(f"has a weight {weight[:40]!r} that is not a positive integer")
        parts.append((_LEVELS[name.lower()], int(weight or 1)))
    if sum(weight for _, weight in parts) > MAX_MIX_WEIGHT:
        raise ValueError(f"has weights adding up to more than {MAX_MIX_WEIGHT}")
    return [level for level, weight in parts for _ in range(weight)]


def _chatter(ctx: StepContext, what: str) -> None:
    """Log ``lines`` lines at ``rate`` per second in the configured level mix.
    Even lines go through the step's logger (with fields), odd ones through
    plain ``logging``: both must land in the step."""
    lines: int = ctx.params["lines"]
    rate: float = ctx.params["rate"]
    pattern = _parse_mix(ctx.params["mix"])
    plain = logging.getLogger(f"demo.{what}")
    for i in range(1, lines + 1):
        level = pattern[i % len(pattern)]
        if i % 2:
            plain.log(level, "%s item %d of %d", what, i, lines)
        else:
            ctx.log.log(level, "%s item %d of %d", what, i, lines, item=i, stage=what)
        if i % 50 == 0 or i == lines:
            ctx.progress(i, lines, f"{what} {i}/{lines}")
        if rate > 0:
            ctx.sleep(1 / rate)
        elif i % 1000 == 0:
            ctx.check_cancelled()
    if ctx.params["fail_step"] == what:
        raise RuntimeError(f"{what} was told to fail (fail_step={what!r})")


def extract(ctx: StepContext) -> None:
    ctx.log.info("\x1b[1;36mextracting\x1b[0m from a pretend source", source="demo")
    _chatter(ctx, "extract")


def transform(ctx: StepContext) -> None:
    # a helper thread started through the context logs into this step too
    ctx.thread(lambda: logging.getLogger("demo.helper").info("helper thread says hi")).join()
    _chatter(ctx, "transform")


async def load(ctx: StepContext) -> None:
    """An async step: logging from its tasks lands here as well."""
    import asyncio

    async def chunk(n: int) -> None:
        logging.getLogger("demo.load").info("loaded chunk %d", n)

    await asyncio.gather(*(chunk(n) for n in range(3)))
    await asyncio.to_thread(_chatter, ctx, "load")


def report(ctx: StepContext) -> None:
    _chatter(ctx, "report")
    ctx.log.info("report ready", rows=ctx.params["lines"] * 4)


DEMO = JobDefinition.of(
    "demo",
    [extract, transform, load, report],
    params=[
        Param("lines", int, 200, "lines each step logs", min=0, max=MAX_LINES),
        Param(
            "rate",
            float,
            25.0,
            "lines per second per step (0 = as fast as possible)",
            min=0,
            max=MAX_RATE,
        ),
        Param(
            "mix",
            str,
            DEFAULT_MIX,
            "level mix, e.g. info:3,error:1",
            _parse_mix,
            pattern=MIX_PATTERN,
        ),
        Param("fail_step", str, "", "name of a step that should fail at its end"),
    ],
    description="Four steps that log at a set rate and level mix and report progress.",
)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def scan(ctx: StepContext) -> None:
    root = Path(ctx.params["path"]).expanduser()
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory")
    files = _files(root)
    total = sum(p.stat().st_size for p in files)
    ctx.log.info(
        "found %d files, %d bytes under %s", len(files), total, root, files=len(files), bytes=total
    )


def hash_files(ctx: StepContext) -> None:
    root = Path(ctx.params["path"]).expanduser()
    files = _files(root)
    total_lines = 0
    for n, path in enumerate(files, 1):
        ctx.check_cancelled()
        digest = hashlib.sha256()
        lines = 0
        try:
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 16), b""):
                    digest.update(block)
                    lines += block.count(b"\n")
        except OSError as e:
            ctx.log.warning("cannot read %s: %s", path, e, path=str(path))
            continue
        total_lines += lines
        ctx.log.info(
            "%s %d lines %s",
            os.path.relpath(path, root),
            lines,
            digest.hexdigest()[:16],
            path=str(path),
            lines=lines,
            sha256=digest.hexdigest(),
        )
        ctx.progress(n, len(files), str(path.name))
    ctx.log.info(
        "hashed %d files, %d lines in all",
        len(files),
        total_lines,
        files=len(files),
        lines=total_lines,
    )


INDEX_FILES = JobDefinition.of(
    "index-files",
    [scan, ("hash", hash_files)],
    params=[Param("path", str, ".", "directory to index")],
    description="Walk a directory, hash and count the lines of every file.",
)


def builtin_registry() -> Registry:
    registry = Registry()
    registry.register(DEMO)
    registry.register(INDEX_FILES)
    return registry


def load_registry(job_sources: Iterable[str] = ()) -> Registry:
    """The built-in definitions and those of every ``--jobs`` module or file
    (the server and every worker process load the same ones)."""
    registry = builtin_registry()
    for module_or_file in job_sources:
        registry.load(module_or_file)
    return registry
