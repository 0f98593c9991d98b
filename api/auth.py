"""Bearer-token protection for the API and the stream (pure ASGI, so the SSE
stream is never buffered by a middleware).

The token may come as ``Authorization: Bearer <token>`` or, for EventSource
and links that cannot set headers, as ``?token=<token>``. The page, its static
files and ``/healthz`` stay open: they reveal nothing, and the page needs to
load before it can send the token.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import ApiError, api_error

PROTECTED_PREFIXES = ("/api/", "/openapi.json")


class TokenAuth:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def _presented(self, scope: Scope) -> bytes:
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value.lower().startswith(b"bearer "):
                return bytes(value[7:].strip())
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return query.get("token", [""])[0].encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"].startswith(PROTECTED_PREFIXES)
            and not hmac.compare_digest(self._presented(scope), self.token)
        ):
            error = ApiError(
                401,
                "unauthorized",
                "a valid token is required (Authorization: Bearer <token> or ?token=<token>)",
            )
            response = await api_error(None, error)  # type: ignore[arg-type]
            response.headers["WWW-Authenticate"] = "Bearer"
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
