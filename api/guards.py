"""Who may ask: requests a web page could send the server on its user's behalf
are refused before any route runs (pure ASGI, so it covers the page, the API
and the stream alike, and never buffers the stream).

- ``Host`` must be a name the server was started for: a page on a foreign
  name that was re-pointed at 127.0.0.1 (DNS rebinding) is refused.
- ``Origin``, when a browser sends one, must be the server's own: another
  site's page may not use it (CSRF). Scripts and the CLI send none.
- A state-changing request must say ``Content-Type: application/json``, a
  type a browser sends cross-site only after a preflight this server never
  grants; forms and ``text/plain`` are refused.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from steptrail.api.errors import ApiError, refuse
from steptrail.api.policy import ANY_HOST

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON = "application/json"


_HOST = re.compile(r"\[(?P<ipv6>[0-9a-fA-F:.]+)\]|(?P<name>[^:\[\]@/]+)")
_PORT = re.compile(r"(:\d+)?")


def host_name(host: str) -> str:
    """``[::1]:8000`` -> ``::1``, ``LocalHost.:80`` -> ``localhost``; empty
    for anything that is not a host and an optional port."""
    match = _HOST.match(host)
    if match is None or not _PORT.fullmatch(host, match.end()):
        return ""
    return (match["ipv6"] or match["name"]).rstrip(".").lower()


class RequestGuard:
    def __init__(self, app: ASGIApp, host_names: frozenset[str]) -> None:
        self.app = app
        self.host_names = host_names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            error = self._refusal(scope["method"], Headers(scope=scope))
            if error is not None:
                await refuse(error, scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, method: str, headers: Headers) -> ApiError | None:
        host = headers.get("host", "")
        if ANY_HOST not in self.host_names and host_name(host) not in self.host_names:
            allowed = ", ".join(sorted(self.host_names))
            return ApiError(
                403,
                "host_not_allowed",
                f"this server does not answer to the host {host!r} (it answers to {allowed});"
                " start it with --allowed-hosts NAME to add a name",
            )
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
            return ApiError(
                403,
                "cross_origin",
                f"requests from pages of {origin!r} are refused: only this server's own page"
                " (or a client that sends no Origin) may use it",
            )
        content_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if method in STATE_CHANGING and content_type != JSON:
            return ApiError(
                415,
                "unsupported_media_type",
                f"{method} requests must have Content-Type: {JSON}"
                f" (got {content_type or 'none'!r}), even without a body",
            )
        return None
