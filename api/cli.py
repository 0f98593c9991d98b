"""The ``steptrail`` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import httpx
import orjson
import uvicorn
from starlette.concurrency import run_in_threadpool

from domain.builtin_jobs import builtin_registry
from domain.definitions import Registry
from domain.store import parse_store

DEFAULT_URL = "http://127.0.0.1:8000"


def _registry(jobs: Sequence[str]) -> Registry:
    registry = builtin_registry()
    for module_or_file in jobs:
        registry.load(module_or_file)
    return registry


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


def cmd_serve(args: argparse.Namespace) -> int:
    from api.app import create_app
    from api.runtime import DataDirInUse, Runtime, Settings

    settings = Settings(
        location=parse_store(args.store, args.data_dir),
        registry=_registry(args.jobs),
        workers=not args.no_workers,
        concurrency=args.concurrency,
        lease_seconds=args.lease,
    )
    try:
        rt = Runtime(settings)
    except DataDirInUse as e:
        print(f"steptrail: {e}", file=sys.stderr)
        return 2
    app = create_app(rt)
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=3
    )
    server = uvicorn.Server(config)

    if args.demo:
        original_startup = server.startup

        async def startup(sockets: Any = None) -> None:
            await original_startup(sockets)
            job_id, _ = await run_in_threadpool(rt.commands.submit, "demo", {})
            print(f"steptrail: demo job {job_id} submitted", flush=True)

        server.startup = startup  # type: ignore[method-assign]
    print(
        f"steptrail: serving the queue page at http://{args.host}:{args.port}/ "
        f"(data in {settings.location.postgres_url or settings.location.data_dir})",
        flush=True,
    )
    server.run()
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    body = {"definition": args.definition, "params": _params(args.param)}
    try:
        r = httpx.post(f"{args.url}/api/jobs", json=body, timeout=30)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="steptrail", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server (API, page, workers)")
    serve.add_argument("--data-dir", default=os.environ.get("STEPTRAIL_DATA_DIR", ".steptrail"))
    serve.add_argument(
        "--store",
        default=os.environ.get("STEPTRAIL_STORE"),
        help="sqlite (default) or a postgresql:// URL",
    )
    serve.add_argument("--host", default=os.environ.get("STEPTRAIL_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("STEPTRAIL_PORT", "8000")))
    serve.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("STEPTRAIL_CONCURRENCY", "2")),
        help="jobs run at once by this process",
    )
    serve.add_argument(
        "--jobs",
        action="append",
        default=[],
        help="module or .py file with JobDefinitions (repeatable)",
    )
    serve.add_argument("--demo", action="store_true", help="submit the demo job at start")
    serve.add_argument("--no-workers", action="store_true", help="API and page only")
    serve.add_argument(
        "--lease",
        type=float,
        default=float(os.environ.get("STEPTRAIL_LEASE_SECONDS", "15")),
        help="seconds without a heartbeat before a step is abandoned",
    )
    serve.set_defaults(fn=cmd_serve)

    submit = sub.add_parser("submit", help="submit a job to a running server")
    submit.add_argument("definition")
    submit.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    submit.add_argument("--url", default=os.environ.get("STEPTRAIL_URL", DEFAULT_URL))
    submit.set_defaults(fn=cmd_submit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
