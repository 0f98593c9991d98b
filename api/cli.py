"""The ``steptrail`` command."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

import httpx
import orjson
import uvicorn

from steptrail.api.cli_history import register as register_history_commands
from steptrail.api.cli_options import add_store_args
from steptrail.api.cli_retention import register as register_retention_commands
from steptrail.api.httpserver import server_config
from steptrail.api.policy import ANY_HOST, Policy
from steptrail.api.retention import parse_duration
from steptrail.api.runtime import DataDirInUse, Runtime, Settings
from steptrail.domain.store import parse_store
from steptrail.domain.terminal import COLOR_CHOICES
from steptrail.projections.integrity import StoreDamaged

DEFAULT_URL = "http://127.0.0.1:8000"


def _param_value(raw: str) -> Any:
    """``5`` -> 5, ``true`` -> True, ``hello`` -> "hello": JSON when it parses."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def _params(pairs: Sequence[str]) -> dict[str, Any]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--param wants key=value, got {pair!r}")
        params[key] = _param_value(value)
    return params


def _runtime(args: argparse.Namespace, workers: bool) -> Runtime | None:
    settings = Settings(
        location=parse_store(args.store, args.data_dir),
        job_sources=tuple(args.jobs),
        workers=workers,
        concurrency=args.concurrency,
        lease_seconds=args.lease,
        cancel_grace=args.cancel_grace,
        console_color=args.color,
        retention=getattr(args, "retention", None),
    )
    try:
        return Runtime(settings)
    except (DataDirInUse, StoreDamaged) as e:
        print(f"steptrail: {e}", file=sys.stderr)
        return None


def say(text: str) -> None:
    """Tell the operator on stdout. A server whose stdout is closed (``steptrail
    serve | head``) or stalled goes on serving: stdout is never in charge."""
    with contextlib.suppress(OSError, ValueError):
        print(text, flush=True)


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _policy(args: argparse.Namespace) -> Policy:
    """The names ``--host`` and ``--allowed-hosts`` give, beyond loopback."""
    hosts = [h.strip() for h in args.allowed_hosts.split(",") if h.strip()]
    if args.host not in ("0.0.0.0", "::", ""):
        hosts.append(args.host)
    return Policy(
        allowed_hosts=tuple(hosts),
        max_body_bytes=args.max_body_bytes,
        body_seconds=args.header_timeout,
        max_streams_per_client=args.max_streams_per_client,
    )


def _token_source(args: argparse.Namespace) -> str:
    """Where the token came from, to print instead of the token."""
    if args.token == os.environ.get("STEPTRAIL_TOKEN"):
        return "the STEPTRAIL_TOKEN environment variable"
    return "--token"


def _submit_demo(rt: Runtime) -> None:
    """``serve --demo``: a job to watch as soon as the page opens (one per start)."""
    job_id, _ = rt.commands.submit("demo", {})
    say(f"steptrail: demo job {job_id} submitted")


def cmd_serve(args: argparse.Namespace) -> int:
    from steptrail.api.app import create_app

    if not args.token and not _is_loopback(args.host):
        print(
            "steptrail: serving beyond loopback needs --token (or STEPTRAIL_TOKEN)", file=sys.stderr
        )
        return 2
    policy = _policy(args)
    if not args.token and ANY_HOST in policy.host_names():
        # Any name includes one a foreign site re-points at this machine (DNS rebinding).
        print("steptrail: --allowed-hosts '*' needs --token (or STEPTRAIL_TOKEN)", file=sys.stderr)
        return 2
    rt = _runtime(args, workers=not args.no_workers)
    if rt is None:
        return 2
    app = create_app(
        rt, token=args.token, policy=policy, on_start=_submit_demo if args.demo else None
    )
    config = server_config(app, args.host, args.port, args.keep_alive_timeout, args.header_timeout)
    server = uvicorn.Server(config)
    where = rt.location.postgres_url or rt.location.data_dir
    page = f"http://{args.host}:{args.port}/"
    say(f"steptrail: serving the queue page at {page} (data in {where})")
    if not _is_loopback(args.host):
        names = ", ".join(sorted(policy.host_names()))
        say(f"steptrail: answering to the host names {names} (add more with --allowed-hosts)")
    if args.token:
        say(
            f"steptrail: the API needs the token given by {_token_source(args)}"
            " (the page asks for it)"
        )
    server.run()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run jobs (and, when it holds the lock, the projection) until SIGTERM/SIGINT."""
    if not parse_store(args.store, args.data_dir).is_postgres:
        print("steptrail: worker needs a shared store: --store postgresql://...", file=sys.stderr)
        return 2
    rt = _runtime(args, workers=True)
    if rt is None:
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    rt.start()
    assert rt.orchestrator is not None
    say(f"steptrail: worker {rt.orchestrator.worker_id} running")
    stop.wait()
    rt.stop()
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    body = {"definition": args.definition, "params": _params(args.param)}
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    try:
        r = httpx.post(f"{args.url}/api/jobs", json=body, headers=headers, timeout=30)
    except httpx.HTTPError as e:
        print(f"steptrail: cannot reach {args.url}: {e}", file=sys.stderr)
        return 2
    if r.status_code >= 400:
        print(f"steptrail: {r.json()['error']['message']}", file=sys.stderr)
        return 1
    job = r.json()
    print(job["id"])
    print(f"{args.url}/#/jobs/{job['id']}", file=sys.stderr)
    return 0


def _add_runtime_args(p: argparse.ArgumentParser) -> None:
    """Options shared by every process that runs jobs or serves."""
    add_store_args(p)
    p.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("STEPTRAIL_CONCURRENCY", "2")),
        help="worker processes: steps run at once by this process",
    )
    p.add_argument(
        "--jobs",
        action="append",
        default=[],
        help="module or .py file with JobDefinitions (repeatable)",
    )
    p.add_argument(
        "--lease",
        type=float,
        default=float(os.environ.get("STEPTRAIL_LEASE_SECONDS", "15")),
        help="seconds without a heartbeat before a step is abandoned",
    )
    p.add_argument(
        "--cancel-grace",
        type=float,
        default=float(os.environ.get("STEPTRAIL_CANCEL_GRACE", "5")),
        help="seconds a cancelled or timed-out step has to stop before its worker is stopped",
    )
    p.add_argument(
        "--color",
        choices=COLOR_CHOICES,
        default=os.environ.get("STEPTRAIL_COLOR", "auto"),
        help="colours in the console's log lines: auto (on a terminal), always or never",
    )


def _add_protection_args(p: argparse.ArgumentParser) -> None:
    """What ``serve`` accepts from the network (see api/policy.py, api/httpserver.py)."""
    env = os.environ.get
    p.add_argument(
        "--allowed-hosts",
        default=env("STEPTRAIL_ALLOWED_HOSTS", ""),
        metavar="NAME[,NAME...]",
        help="host names to answer to besides localhost, 127.0.0.1, ::1 and --host (* = any)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=int(env("STEPTRAIL_MAX_BODY_BYTES", str(Policy.max_body_bytes))),
        help="larger request bodies are refused (413) unread",
    )
    p.add_argument(
        "--max-streams-per-client",
        type=int,
        default=int(env("STEPTRAIL_MAX_STREAMS_PER_CLIENT", str(Policy.max_streams_per_client))),
        help="open /api/stream connections per client address (more: 429)",
    )
    p.add_argument(
        "--keep-alive-timeout",
        type=float,
        default=float(env("STEPTRAIL_KEEP_ALIVE_TIMEOUT", "5")),
        metavar="SECONDS",
        help="close a connection idle this long after a response",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=float(env("STEPTRAIL_HEADER_TIMEOUT", "10")),
        metavar="SECONDS",
        help="close a connection whose request head, or then its body, has not arrived whole"
        " in this time",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="steptrail", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server (API, page, workers)")
    _add_runtime_args(serve)
    serve.add_argument("--host", default=os.environ.get("STEPTRAIL_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("STEPTRAIL_PORT", "8000")))
    serve.add_argument(
        "--token",
        default=os.environ.get("STEPTRAIL_TOKEN"),
        help="require this bearer token on the API and stream",
    )
    _add_protection_args(serve)
    serve.add_argument("--demo", action="store_true", help="submit the demo job at start")
    serve.add_argument("--no-workers", action="store_true", help="API and page only")
    serve.add_argument(
        "--retention",
        type=_duration,
        default=os.environ.get("STEPTRAIL_RETENTION"),
        metavar="DURATION",
        help="delete jobs that ended longer ago than this (30d, 12h, 90m), at start and hourly",
    )
    serve.set_defaults(fn=cmd_serve)

    worker = sub.add_parser("worker", help="run jobs only (needs a PostgreSQL --store)")
    _add_runtime_args(worker)
    worker.set_defaults(fn=cmd_worker)

    submit = sub.add_parser("submit", help="submit a job to a running server")
    submit.add_argument("definition")
    submit.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    submit.add_argument("--url", default=os.environ.get("STEPTRAIL_URL", DEFAULT_URL))
    submit.add_argument("--token", default=os.environ.get("STEPTRAIL_TOKEN"))
    submit.set_defaults(fn=cmd_submit)

    register_history_commands(sub, DEFAULT_URL)
    register_retention_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
