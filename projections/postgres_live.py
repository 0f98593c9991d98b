"""Coordination between processes sharing one PostgreSQL store.

- :class:`ProjectorLock`: exactly one projection runner at a time, through a
  session-level advisory lock on a dedicated connection. If its process dies,
  the connection closes, the lock is released, and a standby takes over.
- :class:`Listener`: wakes this process when any process stores events (the
  event store's own NOTIFY channel) or moves the read model (our channel), with
  a slow poll as a safety net for a notification lost to a reconnect.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable

import psycopg
from psycopg import sql

log = logging.getLogger("steptrail.postgres")

LOCK_CHECK_SECONDS = 1.0


def readmodel_channel(schema: str) -> str:
    return f"steptrail_readmodel_{schema}"


def _lock_key(schema: str) -> int:
    digest = hashlib.sha256(f"steptrail projection {schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class ProjectorLock:
    def __init__(self, conninfo: str, schema: str) -> None:
        self.conninfo = conninfo
        self.key = _lock_key(schema)
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._checked_at = 0.0

    @property
    def owned(self) -> bool:
        """Held as far as we know, without touching the database."""
        return self._conn is not None

    def held(self) -> bool:
        """True while this process holds the lock; tries to take it if not."""
        now = time.monotonic()
        if self._conn is not None:
            if now - self._checked_at < LOCK_CHECK_SECONDS:
                return True
            try:
                self._conn.execute("SELECT 1")
                self._checked_at = now
                return True
            except psycopg.Error:
                log.warning("lost the projection lock's connection")
                self.release()
        try:
            conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
        except psycopg.Error:
            return False
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        if row and row[0]:
            self._conn, self._checked_at = conn, now
            log.info("this process now runs the projection")
            return True
        conn.close()
        return False

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Listener:
    def __init__(
        self,
        conninfo: str,
        channels: dict[str, Callable[[str], None]],
        poll: Callable[[], None],
        poll_seconds: float = 1.0,
    ) -> None:
        self.conninfo = conninfo
        self.channels = channels
        self.poll = poll
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steptrail-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except psycopg.Error:
                log.warning("LISTEN connection failed; reconnecting", exc_info=True)
                self._stop.wait(1.0)

    def _listen(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
            for channel in self.channels:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self.poll()  # anything that happened while we were not listening
            while not self._stop.is_set():
                for notify in conn.notifies(timeout=self.poll_seconds):
                    self.channels[notify.channel](notify.payload)
                self.poll()
