"""Group commit: the Dramatiq messages of many concurrent webhooks written to Redis in one round trip.

The cost of answering a webhook is round trips and per-request Python, not hashing; while one batch
is on the wire the next requests' events gather in a bounded buffer and go in the next batch,
written by one Lua script call (atomic, like MULTI/EXEC). Each request waits until that call
succeeded for its batch, so a 2xx still means "held by Redis".

The keys and the messages are what Dramatiq's RedisBroker writes (its dispatch script's `enqueue`:
`HSET <ns>:<queue>.msgs <redis_message_id> <message>` then `RPUSH <ns>:<queue> <redis_message_id>`;
the message is `Message.encode`'s JSON), so stock Dramatiq workers consume them. The script builds
each message itself from the batch (one JSON argument: its events, its timestamp and random bytes
for the ids, version-4 UUIDs as Dramatiq's own): per request, the event loop only queues a tuple.
That couples us to the broker's layout; this module is the project's one fast path past a
library's public API, and two contract tests run against whatever Dramatiq is installed:
tests/unit/test_group_commit.py (each message decodes to what `Message.encode` writes for the same
values) and tests/integration/test_group_commit.py (on real Redis, the same, and a stock worker
consumes every message this module wrote).

The same script keeps one fetch per burst (adapters/queue/coalesce.py): per event, an event id
already seen within the signature tolerance is dropped (SET NX with expiry), and a session whose
fetch is queued and not yet started gets no second message (its marker, SET NX with the enqueue;
the marker keeps the latest signed event time it stands for, which the expiry rule judges). It
refuses a whole batch past QUEUE_MAX_MESSAGES, so Redis keeps the room its workers need, and pushes
wake-up tokens for idle consumers (adapters/queue/wakeup.py). All of it inside the one round trip
the batch costs anyway.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio

log = logging.getLogger(__name__)

_Event = tuple[str, str, int]  # session id, event id ('' when none), signed event time (epoch ms, 0 unknown)

PENDING_TTL = 600  # seconds: a marker whose message was lost (purged by hand) stops coalescing after this
WAKE_TOKENS = 16  # the wake-up list holds at most this many: enough to wake every idle consumer
_ID_BYTES = 32  # random bytes per message: its redis_message_id and its message_id

# KEYS: the queue's message hash, its list, its delay queue's message hash (retries waiting their turn),
# its wake-up list. ARGV[1], the same for every batch: a JSON array of the ceiling (0: none), the marker
# prefix, the seen-event prefix, the marker's and the seen event's time to live (s), the wake-up list's
# cap and the message's opening up to its first argument. ARGV[2], the batch: a JSON array of its
# timestamp (epoch ms), 64 random hex digits per event and the events, each [session id, event id ('' when
# none), signed event time (epoch ms, 0 unknown)], in arrival order. Two arguments, each one JSON string:
# redis-py's asyncio client packs a command's arguments one by one in Python.
# Answers -1 when the batch would take the queue past the ceiling (the whole batch is refused: Redis must
# keep room for workers to heartbeat, fetch and ack), else one answer per event: its message id when
# enqueued, else 1 coalesced into the queued fetch, 2 duplicate event (coalesce.Admission).
# A message is Message.encode's JSON with its fields in that order; cjson quotes the strings (it may
# escape '/' where Python does not: the same JSON value). The hash before the list: a consumer never pops
# an id whose message is not stored yet (and a script runs whole). The marker and seen keys are named
# inside the script, as Dramatiq's own script names its keys.
ENQUEUE_BATCH = """
local ceiling, pending_prefix, seen_prefix, pending_ttl, seen_ttl, cap, opening = unpack(cjson.decode(ARGV[1]))
local batch = cjson.decode(ARGV[2])
local stamp, random, events = string.format('%d', batch[1]), batch[2], batch[3]
if ceiling > 0 and redis.call('HLEN', KEYS[1]) + redis.call('HLEN', KEYS[3]) + #events > ceiling then
    return -1
end
local function uuid(at)
    local variant = string.format('%x', 8 + tonumber(string.sub(random, at + 16, at + 16), 16) % 4)
    return string.sub(random, at, at + 7) .. '-' .. string.sub(random, at + 8, at + 11) .. '-4' ..
        string.sub(random, at + 13, at + 15) .. '-' .. variant .. string.sub(random, at + 17, at + 19) ..
        '-' .. string.sub(random, at + 20, at + 31)
end
local fields, ids, answers = {}, {}, {}
for i, event in ipairs(events) do
    local session_id, event_id, event_at = event[1], event[2], string.format('%d', event[3])
    local marker = pending_prefix .. session_id
    if event_id ~= '' and not redis.call('SET', seen_prefix .. event_id, 1, 'NX', 'EX', seen_ttl) then
        answers[i] = 2
    elseif not redis.call('SET', marker, event_at, 'NX', 'EX', pending_ttl) then
        answers[i] = 1
        if event[3] > (tonumber(redis.call('GET', marker)) or 0) then
            redis.call('SET', marker, event_at, 'KEEPTTL')
        end
    else
        local redis_message_id, message_id = uuid(i * 64 - 63), uuid(i * 64 - 31)
        local kwargs = '{"event_id":' .. (event_id == '' and 'null' or cjson.encode(event_id))
        if event[3] > 0 then
            kwargs = kwargs .. ',"event_at":' .. event_at
        end
        fields[#fields + 1] = redis_message_id
        fields[#fields + 1] = opening .. cjson.encode(session_id) .. '],"kwargs":' .. kwargs ..
            '},"options":{"redis_message_id":"' .. redis_message_id .. '"},"message_id":"' .. message_id ..
            '","message_timestamp":' .. stamp .. '}'
        ids[#ids + 1] = redis_message_id
        answers[i] = message_id
    end
end
if #ids > 0 then
    redis.call('HSET', KEYS[1], unpack(fields))
    redis.call('RPUSH', KEYS[2], unpack(ids))
    redis.call('LPUSH', KEYS[4], unpack(ids, 1, math.min(#ids, cap)))
    redis.call('LTRIM', KEYS[4], 0, cap - 1)
end
return answers
"""


def queue_keys(namespace: str, queue_name: str) -> tuple[str, str]:
    """Dramatiq's Redis keys for a queue: the hash of its messages and the list of their ids."""
    return f"{namespace}:{queue_name}.msgs", f"{namespace}:{queue_name}"


def wake_key(namespace: str, queue_name: str) -> str:
    """The list idle consumers of a queue block on (adapters/queue/wakeup.py)."""
    return f"{namespace}:{queue_name}.wake"


def pending_key(namespace: str, session_id: str) -> str:
    """Present while a fetch for the session is queued and not yet started."""
    return f"{namespace}:pending-fetch:{session_id}"


def seen_key(namespace: str, event_id: str) -> str:
    """Present for the signature tolerance after a webhook event id was first taken."""
    return f"{namespace}:seen-event:{event_id}"


def storable(text: str) -> bool:
    """Whether Redis can take the string: UTF-8 encodes it (JSON escapes can spell lone surrogates,
    which nothing encodes; one in a batch would fail the whole batch)."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


class GroupCommitError(Exception):
    """Redis did not take the batch, or the buffer is full: the caller answers 503."""


class QueueFull(GroupCommitError):
    """The queue holds its ceiling of messages: refused before Redis itself fills up."""


class GroupCommit:
    """One writer per event loop; callers `await put(...)` and share its round trips.

    `max_pending` bounds the buffer: a full buffer refuses at once (back-pressure reaches the
    vendor as a 503 and a later redelivery) instead of growing memory. `max_messages` bounds the
    queue in Redis the same way (0: no ceiling), checked inside the script at no extra round trip.
    `duplicate_window`: seconds an event id is remembered (the signature tolerance).
    """

    def __init__(
        self,
        redis_url: str,
        namespace: str,
        queue_name: str,
        actor_name: str,
        *,
        max_pending: int = 4096,
        max_batch: int = 512,
        timeout: float = 5.0,
        duplicate_window: int = 300,
        max_messages: int = 0,
        client_factory: Callable[[], redis.asyncio.Redis] | None = None,
    ) -> None:
        self.redis_url = redis_url
        self._client_factory = client_factory or self._connect
        self.messages_key, self.queue_key = queue_keys(namespace, queue_name)
        delayed_messages_key = queue_keys(namespace, f"{queue_name}.DQ")[0]
        self._keys = [self.messages_key, self.queue_key, delayed_messages_key, wake_key(namespace, queue_name)]
        self.max_messages = max_messages
        opening = f'{{"queue_name":{json.dumps(queue_name)},"actor_name":{json.dumps(actor_name)},"args":['
        self._settings = orjson.dumps(
            [
                max_messages,
                pending_key(namespace, ""),
                seen_key(namespace, ""),
                PENDING_TTL,
                duplicate_window,
                WAKE_TOKENS,
                opening,
            ]
        )
        self.max_pending = max_pending
        self.max_batch = max_batch
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: redis.asyncio.Redis | None = None
        self._enqueue: Any = None
        self._events: list[_Event] = []  # waiting for the next batch, and beside each its waiter
        self._waiters: list[asyncio.Future[bytes | int]] = []
        self._writer: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._events)

    async def put(self, session_id: str, event_id: str | None, event_at: int | None) -> bytes | int:
        """Once Redis holds the session's message, or knows it needs none: the message's Dramatiq id
        (ASCII bytes) when enqueued, else 1 coalesced or 2 duplicate (coalesce.Admission). Raises
        QueueFull past the ceiling, GroupCommitError when Redis did not take it. `event_at`: the event's
        signed time (epoch ms), which a coalesced webhook leaves on the marker. The strings must be
        encodable as UTF-8 (no lone surrogates): ValueError otherwise, before the batch."""
        loop = self._bind()
        if len(self._events) >= self.max_pending:
            raise GroupCommitError("enqueue buffer full")
        event_id = event_id or ""
        if not (storable(session_id) and storable(event_id)):
            raise ValueError("a string UTF-8 cannot encode")  # it must not fail everyone's batch
        future: asyncio.Future[bytes | int] = loop.create_future()
        self._events.append((session_id, event_id, event_at or 0))
        self._waiters.append(future)
        if self._writer is None:
            self._writer = loop.create_task(self._drain())
        return await future

    async def aclose(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _bind(self) -> asyncio.AbstractEventLoop:
        # Futures, tasks and connections belong to one loop; a new loop (tests) starts afresh.
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._client = self._client_factory()
            self._enqueue = self._client.register_script(ENQUEUE_BATCH)  # EVALSHA; loaded again if flushed
            self._events, self._waiters = [], []
            self._writer = None
        return loop

    def _connect(self) -> redis.asyncio.Redis:
        # One connection: only the one writer task uses it, a batch at a time. The pool's checkout
        # and return (a lock, a readability check, connection-count bookkeeping) cost ~2.5 µs of
        # CPU per request at ~16 requests per batch. A broken connection is reopened on the next batch.
        # No socket timeout: `_drain` bounds each batch's whole call (retries included) instead, and a
        # socket timeout would cost every command a task of its own (asyncio.wait_for on Python 3.11).
        return redis.asyncio.Redis.from_url(
            self.redis_url,
            socket_timeout=None,
            socket_connect_timeout=min(self.timeout, 3.0),
            single_connection_client=True,
        )

    async def _drain(self) -> None:
        try:
            while self._events:
                # One turn of the loop first: the requests that became ready in this turn (the ones the
                # last batch's answer resumed, bodies that just arrived) join this batch rather than wait
                # for the next round trip. Under load that makes batches about twice as large and saves a
                # round trip's worth of CPU every other batch; idle, it costs one pass of the loop.
                await asyncio.sleep(0)
                batch, waiters = self._events[: self.max_batch], self._waiters[: self.max_batch]
                del self._events[: self.max_batch], self._waiters[: self.max_batch]
                try:
                    async with asyncio.timeout(self.timeout):
                        verdicts = await self._write(batch)
                except Exception as exc:  # every Redis failure means the same to every waiter: 503
                    log.warning("group commit of %d messages failed: %s", len(batch), type(exc).__name__)
                    error = exc if isinstance(exc, QueueFull) else GroupCommitError(type(exc).__name__)
                    for future in waiters:
                        if not future.done():  # a waiter whose client went away was cancelled
                            future.set_exception(error)
                else:
                    for future, verdict in zip(waiters, verdicts, strict=True):
                        if not future.done():
                            future.set_result(verdict)
        finally:
            self._writer = None

    async def _write(self, batch: list[_Event]) -> list[bytes | int]:
        assert self._enqueue is not None  # noqa: S101 - bound in put()
        stamp = int(time.time() * 1000)
        answer = await self._enqueue(
            keys=self._keys,
            args=[self._settings, orjson.dumps([stamp, os.urandom(_ID_BYTES * len(batch)).hex(), batch])],
        )
        if answer == -1:
            raise QueueFull(f"the queue holds {self.max_messages} messages or more")
        verdicts = list(answer)
        if len(verdicts) != len(batch):  # never: but no waiter may be left without an answer
            raise GroupCommitError(f"{len(verdicts)} answers for {len(batch)} messages")
        return verdicts
