"""Bearer-token protection for the API and the stream (pure ASGI, so the SSE
stream is never buffered by a middleware).

The token comes as ``Authorization: Bearer <token>``. EventSource and download
links cannot set headers, so the stream and step downloads (reads, nothing
more) also take ``?token=<token>``; anywhere else a token in the URL is refused,
so a link can never carry it into a state-changing request. The page, its
static files and ``/healthz`` stay open: they reveal nothing, and the page needs
to load before it can send the token. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import re
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from steptrail.api.errors import ApiError, refuse

PROTECTED_PREFIXES = ("/api/", "/openapi.json")
QUERY_TOKEN_PATHS = re.compile(r"^/api/(stream|steps/[^/]+/logs/download)$")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _header_token(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization" and value.lower().startswith(b"bearer "):
            return bytes(value[7:].strip())
    return None


def _query_token(scope: Scope) -> bytes | None:
    tokens = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return tokens[0].encode() if tokens else None


class TokenAuth:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def _refusal(self, scope: Scope) -> ApiError | None:
        query = _query_token(scope)
        query_allowed = scope["method"] == "GET" and QUERY_TOKEN_PATHS.match(scope["path"])
        if query is not None and not query_allowed:
            return ApiError(
                401,
                "unauthorized",
                "?token= is accepted only on the stream and downloads;"
                " send Authorization: Bearer <token>",
                headers=CHALLENGE,
            )
        presented = _header_token(scope) or query or b""
        if hmac.compare_digest(presented, self.token):
            return None
        return ApiError(
            401,
            "unauthorized",
            "a valid token is required (Authorization: Bearer <token>)",
            headers=CHALLENGE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PROTECTED_PREFIXES):
            error = self._refusal(scope)
            if error is not None:
                await refuse(error, scope, receive, send)
                return
        await self.app(scope, receive, send)
