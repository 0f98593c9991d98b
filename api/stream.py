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
- ``logs``: consecutive lines of one followed step job: ``{step_job_id,
  first_seq, last_seq, lines}``, each line as ``/api/steps/{id}/logs`` shows
  it. Followed: the step of ``?step_job_id=``, or with ``?job_id=J&lines=all``
  every step job of J as the job advances (each line once, in seq order per
  step).

Causal order: messages go out in store-position order, and a step's lines at a
position come before the step row of that position. So a ``step`` message
never counts a line the client has not been sent, and a step's terminal
message (and its job's) comes after every line of that step: a client may stop
reading there.

A message's ``id`` is the position the client is complete up to once it has
that message: every line at or before it, every job/step row before it.
Resuming after an id never repeats a line; only the rows at exactly that
position can come again (whole, idempotent states, each with its own
``position``). Idle connections get comment pings.

Resume: ``Last-Event-ID`` (sent by browsers on reconnect) wins over ``?after=``
(what a page passes on first connect, from a snapshot's ``position``); with
neither, the stream starts at the read model's current position.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from steptrail.api.endpoint import Args, operation
from steptrail.api.errors import bad_request
from steptrail.api.handlers import in_thread, runtime
from steptrail.api.params import Choice, Integer, Uuid, header, query
from steptrail.api.runtime import Runtime
from steptrail.api.schemas import STRING, Answer, ref
from steptrail.projections.changes import Changes, Filters, read_changes
from steptrail.projections.database import Database

RETRY_MS = 2000  # the browser's reconnection delay
PING_SECONDS = 10.0
SEND_TIMEOUT = 30.0  # a send blocked this long closes the connection (it can resume)
IDLE_WAIT = 30.0  # re-check the model this often even without a wake-up
PAUSE_PER_FOLLOWER = 0.0002  # 500 followers: a read every 100 ms at most
MAX_PAUSE = 0.1
SHARED_READS = 8  # recent reads kept for connections at the same cursor (each <~0.4 MB)


def _encode(event: str, position: int, payload: object) -> bytes:
    return ServerSentEvent(orjson.dumps(payload).decode(), event=event, id=str(position)).encode()


@dataclass(frozen=True)
class Batch:
    """One read turned into messages, encoded once for every connection and
    sent as one write (one send per read, however many messages)."""

    body: bytes  # the encoded messages, in order; empty when nothing matched
    through: int


def _in_store_order(changes: Changes) -> list[tuple[int, str, Any]]:
    """``(position, event, payload)`` in store order, the lines at a position
    before the row at that position (the row counts them). Consecutive lines
    of one step become one ``logs`` message (bounded by the read's size)."""
    items = [(line["position"], 0, "logs", line) for line in changes.lines]
    items += [(position, 1, kind, payload) for position, kind, payload in changes.states]
    items.sort(key=lambda item: item[:2])  # stable: lines keep their seq order
    messages: list[tuple[int, str, Any]] = []
    for position, _, kind, payload in items:
        last = messages[-1] if messages else None
        if kind != "logs":
            messages.append((position, kind, payload))
        elif last and last[1] == "logs" and last[2][-1]["step_job_id"] == payload["step_job_id"]:
            last[2].append(payload)
        else:
            messages.append((position, "logs", [payload]))
    return messages


def _logs_json(lines: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "step_job_id": lines[0]["step_job_id"],
        "first_seq": lines[0]["seq"],
        "last_seq": lines[-1]["seq"],
        "lines": lines,
    }


def to_batch(changes: Changes) -> Batch:
    """Give each message the id the client is complete up to once it has it:
    every line at or before the id and every row before it (a resumed stream
    sends the rows at its resume position again, see read_changes). So the id
    is one less than the position of the next lines, the position of the
    next row, or ``through`` for the last message."""
    messages = _in_store_order(changes)
    encoded = []
    for i, (_, kind, payload) in enumerate(messages):
        if i + 1 < len(messages):
            next_position, next_kind, _ = messages[i + 1]
            msg_id = next_position - 1 if next_kind == "logs" else next_position
        else:
            msg_id = changes.through
        data = _logs_json(payload) if kind == "logs" else payload
        encoded.append(_encode(kind, msg_id, data))
    return Batch(b"".join(encoded), changes.through)


class SharedReads:
    """Connections at the same cursor share one read: 500 clients following one
    busy step cost one query and one encoding per change, not 500. A bounded
    map of recent reads, not a queue: a connection that falls behind reads
    for itself."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._reads: OrderedDict[tuple[object, ...], asyncio.Task[Batch]] = OrderedDict()
        self.followers = 0  # open connections

    def pause(self) -> float:
        """Seconds a connection waits after a send before it reads again. A
        lone follower gets every store move at once; many followers of a busy
        step gather more moves per read, so the server's work per second stays
        bounded as followers grow (each still gets every line, in order)."""
        return min(MAX_PAUSE, self.followers * PAUSE_PER_FOLLOWER)

    def _read(self, filters: Filters, after: int, target: int, resumed: bool) -> Batch:
        return to_batch(read_changes(self.db, filters, after, target, resumed))

    async def get(self, filters: Filters, after: int, target: int, resumed: bool) -> Batch:
        key = (filters, after, target, resumed)
        task = self._reads.get(key)
        if task is None:
            task = asyncio.ensure_future(in_thread(self._read, filters, after, target, resumed))
            self._reads[key] = task
            while len(self._reads) > SHARED_READS:
                self._reads.popitem(last=False)
        try:
            # shielded: a client leaving must not cancel a read others wait for
            return await asyncio.shield(task)
        except Exception:
            self._reads.pop(key, None)  # a failed read is not shared: retry it
            raise


def shared_reads(request: Request) -> SharedReads:
    """The app's shared reads (create_app makes one per app: its tasks belong
    to the app's event loop)."""
    reads: SharedReads = request.app.state.shared_reads
    return reads


async def _follow(
    rt: Runtime, shared: SharedReads, filters: Filters, after: int
) -> AsyncIterator[ServerSentEvent | bytes]:
    """One connection: a position cursor, nothing else."""
    ready = {
        "position": after,
        "job_id": filters.job_id,
        "step_job_id": filters.step_job_id,
        "lines": "all" if filters.all_lines else None,
    }
    yield ServerSentEvent(
        orjson.dumps(ready).decode(), event="ready", id=str(after), retry=RETRY_MS
    )
    resumed = True  # the first read also sends the rows at `after` (see read_changes)
    shared.followers += 1
    try:
        while True:
            # Registers for the wake-up before checking the position: a change
            # published between our last read and this wait is never missed.
            if not await rt.notifier.wait_async(after, IDLE_WAIT):
                continue
            batch = await shared.get(filters, after, rt.notifier.position, resumed)
            if batch.body:
                yield batch.body
                await asyncio.sleep(shared.pause())
            after, resumed = batch.through, False
    finally:
        shared.followers -= 1


@operation(
    "Server-Sent Events: job, step and logs messages after a position",
    query("job_id", Uuid(), "only this job's job and step messages"),
    query("step_job_id", Uuid(), "also this step job's lines (logs messages)"),
    query("lines", Choice(("all",)), "with job_id: the lines of every step job of the job"),
    query("after", Integer(0), "start strictly after this position (default: now)"),
    header("Last-Event-ID", Integer(0), "resume strictly after this position (wins over after)"),
    answers={
        200: Answer(
            "the stream; every message's id is the position the client is complete up to",
            {
                "text/event-stream": {
                    **STRING,
                    "x-events": {
                        "ready": ref("StreamReady"),
                        "job": ref("Job"),
                        "step": ref("Step"),
                        "logs": ref("StreamLogs"),
                    },
                }
            },
        )
    },
)
async def stream(request: Request, args: Args) -> Response:
    rt = runtime(request)
    after = args["Last-Event-ID"]
    if after is None:
        after = rt.notifier.position if args["after"] is None else args["after"]
    # Pings are comments without an id: only the stream's own messages, in
    # order, may move the client's position (a ping waiting behind a blocked
    # send could otherwise carry an older id after a newer message).
    return EventSourceResponse(
        _follow(rt, shared_reads(request), _filters(args), after),
        ping=PING_SECONDS,
        send_timeout=SEND_TIMEOUT,
    )


def _filters(args: Args) -> Filters:
    job_id, step_job_id, all_lines = args["job_id"], args["step_job_id"], args["lines"] == "all"
    if all_lines and job_id is None:
        raise bad_request("lines=all follows every step of a job: give job_id", "lines")
    if all_lines and step_job_id is not None:
        raise bad_request("lines=all already follows every step: leave out step_job_id", "lines")
    return Filters(job_id, step_job_id, all_lines)
