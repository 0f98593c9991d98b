"""What the server accepts from the network, in one place (``serve`` options)."""

from __future__ import annotations

from dataclasses import dataclass

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
ANY_HOST = "*"


@dataclass(frozen=True)
class Policy:
    """``allowed_hosts``: names the server answers to besides the loopback
    names (``*``: any). A browser sends the name it looked up as ``Host``, so a
    foreign site whose name was re-pointed at 127.0.0.1 (DNS rebinding) is
    refused. ``max_body_bytes``: the largest request body read.
    ``body_seconds``: how long a body may take to arrive whole.
    ``max_streams_per_client``: open ``/api/stream`` connections per address."""

    allowed_hosts: tuple[str, ...] = ()
    max_body_bytes: int = 1 << 20
    body_seconds: float = 10.0
    max_streams_per_client: int = 32

    def host_names(self) -> frozenset[str]:
        return frozenset(LOOPBACK_NAMES + tuple(h.lower() for h in self.allowed_hosts))
