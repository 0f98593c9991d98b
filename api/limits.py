"""How much one client may take: request body size and open streams (pure
ASGI, so the stream is never buffered).

A body is refused by its ``Content-Length`` before a byte of it is read; a
body without one (chunked) is counted as it is received and refused as soon
as it passes the limit, so the server never holds more than the limit of it.
Either way the answer closes the connection: the rest is never read. A body
must also arrive whole within ``timeout`` seconds: a client that declares a
body and sends it a trickle at a time (or not at all) gets a 408, and its
connection is closed.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from steptrail.api.errors import ApiError, refuse

STREAM_PATH = "/api/stream"


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "body_too_large",
        f"request body is larger than {limit} bytes (serve --max-body-bytes sets the limit)",
        headers={"Connection": "close"},
    )


def _too_slow(timeout: float) -> ApiError:
    return ApiError(
        408,
        "request_timeout",
        f"the request body did not arrive whole within {timeout:g} s",
        headers={"Connection": "close"},
    )


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and int(length) > self.max_bytes:  # h11 checked it is a number
            await refuse(_too_large(self.max_bytes), scope, receive, send)
            return
        received = 0
        complete = False
        deadline = asyncio.get_running_loop().time() + self.timeout

        async def counted() -> Message:
            """The body, bounded; then (the stream, downloads) plain ``receive``,
            which waits for a disconnect as long as the response lasts."""
            nonlocal received, complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _too_slow(self.timeout) from None  # answered by the API's error handler
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _too_large(self.max_bytes)
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, counted, send)


class StreamCap:
    """At most ``per_client`` open streams per client address: a stream holds a
    connection and a reader for as long as it is open, so one client may not
    take them all. Browsers open at most 6 per host anyway."""

    def __init__(self, app: ASGIApp, per_client: int) -> None:
        self.app = app
        self.per_client = per_client
        self.open: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != STREAM_PATH:
            await self.app(scope, receive, send)
            return
        client = scope["client"][0] if scope.get("client") else ""
        if self.open[client] >= self.per_client:
            error = ApiError(
                429,
                "too_many_streams",
                f"this client already has {self.open[client]} streams open, the most allowed"
                " (serve --max-streams-per-client sets it); close one and retry",
                headers={"Retry-After": "5"},
            )
            await refuse(error, scope, receive, send)
            return
        self.open[client] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open[client] -= 1
            if not self.open[client]:
                del self.open[client]
