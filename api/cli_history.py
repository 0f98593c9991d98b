"""``steptrail events | rebuild | verify | tail``: event replay from the terminal.

``events``, ``rebuild`` and ``verify`` open the event store (and read model)
directly, so they work whether or not a server is running; ``rebuild`` swaps
the new model in without taking the running server's model away (see
projections/replace.py). ``tail`` follows a job through a server's API.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from steptrail.api.cli_options import add_store_args
from steptrail.api.tail import READ_TIMEOUT, JobNotFound, Lost, Tail
from steptrail.domain.commands import NotFound
from steptrail.domain.console import child_tag, step_tag
from steptrail.domain.store import JobStore, StoreLocation, parse_store
from steptrail.domain.terminal import COLOR_CHOICES, for_terminal, use_colour
from steptrail.projections.database import Database, PostgresDatabase, SQLiteDatabase
from steptrail.projections.history import job_events
from steptrail.projections.integrity import (
    StoreDamaged,
    check_event_file,
    older_layout,
    sqlite_damage,
)
from steptrail.projections.rebuild import verify, wait_for_position
from steptrail.projections.replace import rebuild_live

EVENTS_PER_PAGE = 200
OLDER_READ_MODEL = 3  # verify's exit status for a model to rebuild before it can be compared


class Unusable(Exception):
    """The data directory or store cannot be used: exit status 2."""


def store_location(args: argparse.Namespace) -> StoreLocation:
    """The store the command names, refused (Unusable) when its event file is
    missing or damaged."""
    location = parse_store(args.store, args.data_dir)
    if not location.is_postgres:
        if not location.events_path.exists():
            raise Unusable(f"no event store at {location.events_path}")
        try:
            check_event_file(location.events_path)
        except StoreDamaged as e:
            raise Unusable(str(e)) from None
    return location


@contextmanager
def _store(args: argparse.Namespace) -> Iterator[JobStore]:
    location = store_location(args)
    store = JobStore(location)
    try:
        yield store
    finally:
        store.close()


def postgres_readmodel(location: StoreLocation) -> PostgresDatabase:
    """The read model a CLI command shares with running servers (few connections)."""
    schema = location.postgres_params()["schema"]
    return PostgresDatabase(location.postgres_conninfo(), schema, max_size=2)


def _live_readmodel(location: StoreLocation) -> Database:
    if location.is_postgres:
        return postgres_readmodel(location)
    path = location.readmodel_path
    if not path.exists():
        raise Unusable(f"no read model at {path}")
    damage = sqlite_damage(path)
    if damage is not None:
        raise Unusable(f"the read model {path} is damaged ({damage}): run `steptrail rebuild`")
    return SQLiteDatabase(path)


def _scratch_dir(location: StoreLocation) -> str | None:
    """Next to the data (sized for it) when it is on this machine."""
    return None if location.is_postgres else str(location.data_dir)


# events


def _value(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _who(event: dict[str, Any], names: dict[str, str]) -> str:
    """Whose event, tagged as ``steptrail tail`` tags lines: ``job``,
    ``fetch#1``, or a child's ``fetch#1.17`` (under its step)."""
    payload, originator = event["payload"], event["originator_id"]
    if event["aggregate"] == "Manager":
        return "job"
    parent = event["parent_step_job_id"]
    if event["type"] == "StepStarted":
        names[originator] = step_tag(payload["step_name"], payload["attempt"])
    elif event["type"] == "ChildQueued":
        step = names.get(parent) or f"step {parent[:8]}"
        names[originator] = child_tag(step, event["child_index"], payload["attempt"])
    elif originator not in names and parent is not None:  # its ChildQueued came before --after
        step = names.get(parent) or f"step {parent[:8]}"
        return f"{step}.{event['child_index']}"
    return names.get(originator) or f"step {originator[:8]}"


def _event_line(event: dict[str, Any], names: dict[str, str]) -> str:
    payload = event["payload"]
    who = _who(event, names)
    details = " ".join(f"{k}={_value(v)}" for k, v in payload.items() if k != "lines")
    return (
        f"{event['position']:>9}  {event['timestamp'][:23]}  {who:<20} "
        f"v{event['version']:<6} {event['type']:<17} {details}"
    )


def _line_text(line: dict[str, Any]) -> str:
    message = line["message"].replace("\n", "\n" + " " * 22)
    return f"{'':>9}  seq {line['seq']:>7} {line['level']:<8} {line['logger']}: {message}"


def cmd_events(args: argparse.Namespace) -> int:
    names: dict[str, str] = {}
    with _store(args) as store:
        after = args.after
        while True:
            page = job_events(store, args.job_id, after, EVENTS_PER_PAGE, args.json or args.lines)
            out = []
            for event in page["events"]:
                if args.json:
                    out.append(orjson.dumps(event).decode())
                    continue
                out.append(_event_line(event, names))
                out += [_line_text(line) for line in event["payload"].get("lines", ())]
            if out:
                print(for_terminal("\n".join(out), colour=False))
            if not page["has_more"]:
                return 0
            after = page["next_after"]


# rebuild and verify


def cmd_rebuild(args: argparse.Namespace) -> int:
    started = time.monotonic()
    with _store(args) as store:
        location = store.location
        if location.is_postgres:
            live = postgres_readmodel(location)
            try:
                position = rebuild_live(store, live)
            finally:
                live.close()
        else:
            position = rebuild_live(store, location.readmodel_path)
    print(
        f"steptrail: rebuilt the read model from the events up to position {position}"
        f" in {time.monotonic() - started:.1f} s"
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    with _store(args) as store:
        live = _live_readmodel(store.location)
        try:
            older = older_layout(live)
            if older is not None:
                print(
                    f"steptrail: verify: the read model is from an older version of steptrail"
                    f" ({older}): run `steptrail rebuild` (a starting server rebuilds it too)",
                    file=sys.stderr,
                )
                return OLDER_READ_MODEL
            stored = store.recorder.max_notification_id() or 0
            at = wait_for_position(live, stored, args.wait)
            if at < stored:
                print(
                    f"steptrail: verify: the read model is at position {at} while the event"
                    f" store is at {stored}: it lags or has stopped (a running server shows"
                    " why in /healthz; `steptrail rebuild` brings it up to date)",
                    file=sys.stderr,
                )
                return 1
            with tempfile.TemporaryDirectory(
                prefix="steptrail-verify-", dir=_scratch_dir(store.location)
            ) as tmp:
                result = verify(store, live, Path(tmp) / "rebuilt.sqlite")
        finally:
            live.close()
    counts = ", ".join(f"{table}: {n}" for table, n in result.counts.items())
    if result.differences:
        print("\n".join(result.differences))
        print(
            f"steptrail: verify: {len(result.differences)} difference(s) between the read model"
            f" and a rebuild from the events at position {result.position}"
            " (`steptrail rebuild` repairs it)",
            file=sys.stderr,
        )
        return 1
    print(
        f"steptrail: verify: the read model matches a rebuild from the events"
        f" at position {result.position} ({counts})"
    )
    if result.unapplied:
        print(
            f"steptrail: verify: {result.unapplied} stored event(s) could not be applied"
            " (in both; listed by /healthz)"
        )
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    timeout = httpx.Timeout(10.0, read=READ_TIMEOUT)
    with httpx.Client(base_url=args.url, headers=headers, timeout=timeout) as client:
        try:
            colour = use_colour(args.color, sys.stdout)
            return Tail(client, args.job_id, args.step, sys.stdout, args.reconnect, colour).run()
        except (JobNotFound, httpx.HTTPStatusError) as e:
            raise Unusable(str(e)) from None
        except Lost as e:
            print(f"steptrail: {e}", file=sys.stderr)
            return 3


def guarded(fn: Any) -> Any:
    """Known failures become one line on stderr and an exit status."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except NotFound as e:
            print(f"steptrail: {e}", file=sys.stderr)
            return 1
        except Unusable as e:
            print(f"steptrail: {e}", file=sys.stderr)
            return 2

    return run


def register(sub: Any, default_url: str) -> None:
    """Add the event replay subcommands to ``steptrail``'s parser."""
    events = sub.add_parser("events", help="print a job's event history in store order")
    events.add_argument("job_id")
    events.add_argument("--json", action="store_true", help="one JSON event per line")
    events.add_argument("--lines", action="store_true", help="print StepLogged lines too")
    events.add_argument("--after", type=int, default=0, help="start after this position")
    add_store_args(events)
    events.set_defaults(fn=guarded(cmd_events))

    rebuild = sub.add_parser(
        "rebuild", help="rebuild the read model from the events (a running server keeps serving)"
    )
    add_store_args(rebuild)
    rebuild.set_defaults(fn=guarded(cmd_rebuild))

    verify_ = sub.add_parser(
        "verify", help="compare the read model with a rebuild; exit 1 on any difference"
    )
    add_store_args(verify_)
    verify_.add_argument(
        "--wait",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long a read model behind the store may take to catch up (default 5)",
    )
    verify_.set_defaults(fn=guarded(cmd_verify))

    tail = sub.add_parser(
        "tail", help="follow a job's lines live (through a server) until the job ends"
    )
    tail.add_argument("job_id")
    tail.add_argument("--step", metavar="NAME", help="only this step (every attempt)")
    tail.add_argument("--url", default=os.environ.get("STEPTRAIL_URL", default_url))
    tail.add_argument("--token", default=os.environ.get("STEPTRAIL_TOKEN"))
    tail.add_argument(
        "--reconnect",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to keep trying to reach a server that went away (default 60)",
    )
    tail.add_argument(
        "--color",
        choices=COLOR_CHOICES,
        default=os.environ.get("STEPTRAIL_COLOR", "auto"),
        help="keep the lines' colours: auto (on a terminal), always or never",
    )
    tail.set_defaults(fn=guarded(cmd_tail))
