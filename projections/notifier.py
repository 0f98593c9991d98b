"""Tells waiters that the read model has reached a new position.

Published from the projection thread; awaited by worker threads and by SSE
connections on the event loop. Waiters hold no queue: they are told "the
model moved", then read what they need from it.
"""

from __future__ import annotations

import asyncio
import threading


class PositionNotifier:
    def __init__(self, position: int = 0) -> None:
        self.position = position
        self._cond = threading.Condition()
        self._async_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def publish(self, position: int) -> None:
        with self._cond:
            if position <= self.position:
                return
            self.position = position
            self._cond.notify_all()
            waiters = list(self._async_waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed; its waiter is gone
                continue

    def wait(self, after: int, timeout: float) -> bool:
        """Block until the position passes ``after``; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self.position > after, timeout)

    async def wait_async(self, after: int, timeout: float) -> bool:
        """Like :meth:`wait` on the event loop. Registers before checking, so a
        publish between the check and the wait is never missed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        event = asyncio.Event()
        key = (loop, event)
        with self._cond:
            self._async_waiters.add(key)
        try:
            while self.position <= after:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                event.clear()
                if self.position > after:  # published between the check and clear()
                    break
                try:
                    await asyncio.wait_for(event.wait(), remaining)
                except TimeoutError:
                    return self.position > after
            return True
        finally:
            with self._cond:
                self._async_waiters.discard(key)
