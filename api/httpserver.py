"""uvicorn as ``serve`` runs it: idle and half-sent connections are closed.

uvicorn closes a keep-alive connection left idle after a response
(``timeout_keep_alive``), but has no deadline for a request head: a client
that connects and sends nothing, or sends its head a byte at a time
(slowloris), holds a connection forever. :class:`HeadTimeoutProtocol` adds
that deadline to uvicorn's h11 protocol.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeadTimeoutProtocol(H11Protocol):
    """A connection waiting for a request head (a new one, or the next on a
    keep-alive connection once its first byte came) is closed unless the
    whole head arrives within ``head_timeout`` seconds."""

    def __init__(self, *args: Any, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout = head_timeout
        self.head_timer: asyncio.TimerHandle | None = None

    # uvicorn narrows the transport to asyncio.Transport, as we do; typeshed's
    # base class says BaseTransport
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._await_head()
        else:
            self._head_arrived()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        if self.head_timer is None:
            self.head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _head_arrived(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def server_config(
    app: ASGIApp, host: str, port: int, keep_alive: float, head_timeout: float
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=3,
        # uvicorn annotates an int but uses the value as asyncio's float delay
        timeout_keep_alive=keep_alive,  # type: ignore[arg-type]
        # uvicorn calls ``http`` as a protocol factory; it annotates a class
        http=partial(HeadTimeoutProtocol, head_timeout=head_timeout),  # type: ignore[arg-type]
    )
