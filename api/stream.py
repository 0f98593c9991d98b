"""``GET /api/stream``: Server-Sent Events that follow the read model.

Pull, not push. A connection holds a cursor (the position it has delivered)
and, for a followed step, a line cursor (a seq). When the read model moves it
reads what changed after its cursor, sends it, and waits again. A client that
reads slowly only makes its own reads later: the server never queues for it,
and the socket's flow control holds at most one message in flight.

Messages (``data`` is JSON; ``id`` is always a store position):

- ``ready``: first message; the position the stream starts after.
- ``job``: a job's row as ``/api/jobs`` shows it.
- ``step``: a step's row as ``/api/steps/{id}`` shows it.
- ``logs``: consecutive lines of the followed step: ``{step_job_id, first_seq,
  last_seq, lines}``, each line as ``/api/steps/{id}/logs`` shows it.

A message's ``id`` is the position the client has everything up to once it has
that message. Within a read, job and step messages come first and lines last,
so resuming after an id never repeats a line: only job/step rows (whole,
idempotent states, each with its own ``position``) can be sent again. Idle
connections get comment pings.

Resume: ``Last-Event-ID`` (sent by browsers on reconnect) wins over ``?after=``
(what a page passes on first connect, from a snapshot's ``position``); with
neither, the stream starts at the read model's current position.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import UUID

import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api.errors import bad_request
from api.handlers import runtime
from api.params import MAX_INTEGER, int_param
from api.runtime import Runtime
from projections.changes import Changes, Filters, read_changes, seq_at
from projections.database import Database

RETRY_MS = 2000  # the browser's reconnection delay
PING_SECONDS = 10.0
SEND_TIMEOUT = 30.0  # a send blocked this long closes the connection (it can resume)
IDLE_WAIT = 30.0  # re-check the model this often even without a wake-up
SHARED_READS = 8  # recent reads kept for connections at the same cursor (each <~0.4 MB)


def _encode(event: str, position: int, payload: object) -> bytes:
    return ServerSentEvent(orjson.dumps(payload).decode(), event=event, id=str(position)).encode()


@dataclass(frozen=True)
class Batch:
    """One read turned into messages, encoded once for every connection and
    sent as one write (one send per read, however many messages)."""

    body: bytes  # the encoded messages, in order; empty when nothing matched
    through: int
    last_seq: int


def to_batch(changes: Changes, step_job_id: str | None, after_seq: int) -> Batch:
    """Give each message the id the client is complete up to once it has it:
    one less than the position of the first thing still to come, or
    ``through`` for the last message. Lines come last: their id is final."""
    first_line = changes.lines[0]["position"] if changes.lines else None
    positions = [position for position, _, _ in changes.states]
    messages = []
    for i, (_, kind, payload) in enumerate(changes.states):
        next_state = positions[i + 1] if i + 1 < len(positions) else None
        to_come = [p for p in (next_state, first_line) if p is not None]
        msg_id = min(to_come) - 1 if to_come else changes.through
        messages.append(_encode(kind, msg_id, payload))
    last_seq = after_seq
    if changes.lines:
        last_seq = changes.lines[-1]["seq"]
        logs = {
            "step_job_id": step_job_id,
            "first_seq": changes.lines[0]["seq"],
            "last_seq": last_seq,
            "lines": changes.lines,
        }
        messages.append(_encode("logs", changes.through, logs))
    return Batch(b"".join(messages), changes.through, last_seq)


class SharedReads:
    """Connections at the same cursor share one read: 500 clients following one
    busy step cost one query and one encoding per change, not 500. A bounded
    map of recent reads, not a queue: a connection that falls behind reads
    for itself."""

    def __init__(self, db: Database) -> None:
        self.db = db  # not the Runtime: this is the value of a weak map keyed by it
        self._reads: OrderedDict[tuple[object, ...], asyncio.Task[Batch]] = OrderedDict()

    def _read(self, filters: Filters, after: int, after_seq: int, target: int) -> Batch:
        changes = read_changes(self.db, filters, after, after_seq, target)
        return to_batch(changes, filters.step_job_id, after_seq)

    async def get(self, filters: Filters, after: int, after_seq: int, target: int) -> Batch:
        key = (filters, after, after_seq, target)
        task = self._reads.get(key)
        if task is None:
            task = asyncio.ensure_future(
                run_in_threadpool(self._read, filters, after, after_seq, target)
            )
            self._reads[key] = task
            while len(self._reads) > SHARED_READS:
                self._reads.popitem(last=False)
        try:
            # shielded: a client leaving must not cancel a read others wait for
            return await asyncio.shield(task)
        except Exception:
            self._reads.pop(key, None)  # a failed read is not shared: retry it
            raise


_shared: weakref.WeakKeyDictionary[Runtime, SharedReads] = weakref.WeakKeyDictionary()


def _shared_reads(rt: Runtime) -> SharedReads:
    if rt not in _shared:
        _shared[rt] = SharedReads(rt.db)
    return _shared[rt]


def _uuid_param(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return str(UUID(raw))
    except ValueError:
        raise bad_request(f"{name} must be a UUID, got {raw!r}", name) from None


def _start_position(request: Request, rt: Runtime) -> int:
    header = request.headers.get("last-event-id")
    if header:
        try:
            position = int(header)
        except ValueError:
            position = -1
        if not 0 <= position <= MAX_INTEGER:
            raise bad_request(f"Last-Event-ID must be a position, got {header!r}", "Last-Event-ID")
        return position
    after = int_param(request.query_params, "after", None, 0)
    return rt.notifier.position if after is None else after


async def _follow(
    rt: Runtime, filters: Filters, after: int
) -> AsyncIterator[ServerSentEvent | bytes]:
    """One connection: a position cursor and a line cursor, nothing else."""
    after_seq = 0
    if filters.step_job_id is not None:
        after_seq = await run_in_threadpool(seq_at, rt.db, filters.step_job_id, after)
    ready = {"position": after, "job_id": filters.job_id, "step_job_id": filters.step_job_id}
    yield ServerSentEvent(
        orjson.dumps(ready).decode(), event="ready", id=str(after), retry=RETRY_MS
    )
    shared = _shared_reads(rt)
    while True:
        # Registers for the wake-up before checking the position: a change
        # published between our last read and this wait is never missed.
        if not await rt.notifier.wait_async(after, IDLE_WAIT):
            continue
        batch = await shared.get(filters, after, after_seq, rt.notifier.position)
        if batch.body:
            yield batch.body
        after, after_seq = batch.through, batch.last_seq


async def stream(request: Request) -> Response:
    rt = runtime(request)
    filters = Filters(_uuid_param(request, "job_id"), _uuid_param(request, "step_job_id"))
    # Pings are comments without an id: only the stream's own messages, in
    # order, may move the client's position (a ping waiting behind a blocked
    # send could otherwise carry an older id after a newer message).
    return EventSourceResponse(
        _follow(rt, filters, _start_position(request, rt)),
        ping=PING_SECONDS,
        send_timeout=SEND_TIMEOUT,
    )
