"""The Starlette application: JSON API, SSE stream, the queue page."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from steptrail.api.auth import TokenAuth
from steptrail.api.endpoint import ApiRoute, Args, operation
from steptrail.api.errors import EXCEPTION_HANDLERS
from steptrail.api.guards import RequestGuard
from steptrail.api.headers import SecurityHeaders
from steptrail.api.limits import STREAM_PATH, BodyLimit, StreamCap
from steptrail.api.openapi import openapi
from steptrail.api.policy import Policy
from steptrail.api.retention_routes import RETENTION_ROUTES
from steptrail.api.routes import ROUTES
from steptrail.api.runtime import Runtime
from steptrail.api.schemas import STRING, Answer
from steptrail.api.search import SEARCH_ROUTES
from steptrail.api.stream import SharedReads, stream

UI_DIR = Path(__file__).resolve().parent.parent / "ui"


@operation("The queue page", answers={200: Answer("the page", {"text/html": STRING})})
async def index(request: Request, args: Args) -> Response:
    return FileResponse(UI_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def _middleware(token: str | None, policy: Policy) -> list[Middleware]:
    """Outermost first: every answer gets the security headers, refusals
    included; who may ask is checked before the token, the token before any
    body is read or stream opened."""
    return [
        Middleware(SecurityHeaders),
        Middleware(RequestGuard, host_names=policy.host_names()),
        *([Middleware(TokenAuth, token=token)] if token else []),
        Middleware(BodyLimit, max_bytes=policy.max_body_bytes, timeout=policy.body_seconds),
        Middleware(StreamCap, per_client=policy.max_streams_per_client),
    ]


def create_app(
    rt: Runtime,
    manage_lifecycle: bool = True,
    token: str | None = None,
    policy: Policy | None = None,
    on_start: Callable[[Runtime], object] | None = None,
) -> Starlette:
    """``manage_lifecycle``: start the runtime when the server starts and stop
    it when the server stops (tests that share a runtime pass False).
    ``token``: require it on the API and the stream (see api/auth.py).
    ``policy``: hosts, body size and streams accepted (see api/policy.py).
    ``on_start``: called (in a thread) once the runtime runs, before the
    server takes requests (``serve --demo`` submits its job there)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_lifecycle:
            await run_in_threadpool(rt.start)
        try:
            if on_start is not None:
                await run_in_threadpool(on_start, rt)
            yield
        finally:
            if manage_lifecycle:
                await run_in_threadpool(rt.stop)

    app = Starlette(
        routes=[
            ApiRoute("GET", "/", index),
            ApiRoute("GET", "/openapi.json", openapi),
            *ROUTES,
            *RETENTION_ROUTES,
            *SEARCH_ROUTES,
            ApiRoute("GET", STREAM_PATH, stream),
            Mount("/ui", StaticFiles(directory=UI_DIR), name="ui"),
        ],
        # Starlette types a handler as taking any Exception; ours take their own kind
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        middleware=_middleware(token, policy or Policy()),
        lifespan=lifespan,
    )
    app.state.runtime = rt
    app.state.shared_reads = SharedReads(rt.db)
    return app
