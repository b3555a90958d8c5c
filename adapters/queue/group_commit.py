"""Group commit: the Dramatiq messages of many concurrent webhooks written to Redis in one round trip.

The cost of answering a webhook is round trips, not hashing; while one batch is on the wire the
next requests' messages gather in a bounded buffer and go in the next batch, written by one Lua
script call (atomic, like MULTI/EXEC, for a quarter less client CPU than the four-command
transaction). Each request waits until that call succeeded for its batch, so a 2xx still means
"held by Redis".

The keys and the message JSON are exactly what Dramatiq's RedisBroker writes (its dispatch
script's `enqueue`: `HSET <ns>:<queue>.msgs <redis_message_id> <message>` then
`RPUSH <ns>:<queue> <redis_message_id>`), so stock Dramatiq workers consume them. That couples
us to the broker's layout; this module is the project's one fast path past a library's public API,
and two contract tests run against whatever Dramatiq is installed: tests/unit/test_group_commit.py
(the bytes are what `Message.encode` writes) and tests/integration/test_group_commit.py (a stock
worker consumes every message this module wrote).

The same script keeps one fetch per burst (adapters/queue/coalesce.py): per message, an event id
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

import redis.asyncio

log = logging.getLogger(__name__)

_Entry = tuple[str, bytes, str, str, int, "asyncio.Future[int]"]

PENDING_TTL = 600  # seconds: a marker whose message was lost (purged by hand) stops coalescing after this
WAKE_TOKENS = 16  # the wake-up list holds at most this many: enough to wake every idle consumer

# KEYS: the queue's message hash, its list, its delay queue's message hash (retries waiting their turn),
# its wake-up list. ARGV: the ceiling (0: none), the marker prefix, the seen-event prefix, the marker's
# and the seen event's time to live (s), the wake-up list's cap; then per message in arrival order:
# redis message id, message, session id, event id ('' when none), signed event time (ms, 0 unknown).
# Answers -1 when the batch would take the queue past the ceiling (the whole batch is refused: Redis must
# keep room for workers to heartbeat, fetch and ack), else one number per message: 0 enqueued,
# 1 coalesced into the queued fetch, 2 duplicate event (coalesce.Admission).
# The hash before the list: a consumer never pops an id whose message is not stored yet (and a script
# runs whole). The marker and seen keys are named inside the script, as Dramatiq's own script names its keys.
ENQUEUE_BATCH = """
local ceiling = tonumber(ARGV[1])
if ceiling > 0 then
    local held = redis.call('HLEN', KEYS[1]) + redis.call('HLEN', KEYS[3])
    if held + (#ARGV - 6) / 5 > ceiling then
        return -1
    end
end
local fields, ids, verdicts = {}, {}, {}
for i = 7, #ARGV, 5 do
    local verdict = 0
    local marker = ARGV[2] .. ARGV[i + 2]
    if ARGV[i + 3] ~= '' and not redis.call('SET', ARGV[3] .. ARGV[i + 3], 1, 'NX', 'EX', ARGV[5]) then
        verdict = 2
    elseif not redis.call('SET', marker, ARGV[i + 4], 'NX', 'EX', ARGV[4]) then
        verdict = 1
        if tonumber(ARGV[i + 4]) > (tonumber(redis.call('GET', marker)) or 0) then
            redis.call('SET', marker, ARGV[i + 4], 'KEEPTTL')
        end
    else
        fields[#fields + 1] = ARGV[i]
        fields[#fields + 1] = ARGV[i + 1]
        ids[#ids + 1] = ARGV[i]
    end
    verdicts[#verdicts + 1] = verdict
end
if #ids > 0 then
    redis.call('HSET', KEYS[1], unpack(fields))
    redis.call('RPUSH', KEYS[2], unpack(ids))
    local cap = tonumber(ARGV[6])
    redis.call('LPUSH', KEYS[4], unpack(ids, 1, math.min(#ids, cap)))
    redis.call('LTRIM', KEYS[4], 0, cap - 1)
end
return verdicts
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


# Dramatiq's JSONEncoder is `json.dumps(data, separators=(",", ":"))`; one encoder built once gives
# the same bytes without building an encoder per call.
_dumps = json.JSONEncoder(separators=(",", ":")).encode
# What that encoder writes for one string (ensure_ascii is on); used directly for the common shapes
# below, a third of the cost of the encoder's general path for containers.
_quote = json.encoder.encode_basestring_ascii


def _json_args(args: tuple[Any, ...]) -> str:
    for arg in args:
        if type(arg) is not str:
            return _dumps(args)
    return f"[{','.join(map(_quote, args))}]"


def _json_kwargs(kwargs: dict[str, Any]) -> str:
    parts = []
    for key, value in kwargs.items():
        if type(key) is not str or (value is not None and type(value) is not str):
            return _dumps(kwargs)
        parts.append(f"{_quote(key)}:{'null' if value is None else _quote(value)}")
    return f"{{{','.join(parts)}}}"


def message_ids() -> tuple[str, str]:
    """Two `str(uuid.uuid4())` from one system call and without UUID objects (version 4, RFC 4122 variant)."""
    raw = bytearray(os.urandom(32))
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    raw[22] = raw[22] & 0x0F | 0x40
    raw[24] = raw[24] & 0x3F | 0x80
    t = raw.hex()
    return (
        f"{t[:8]}-{t[8:12]}-{t[12:16]}-{t[16:20]}-{t[20:32]}",
        f"{t[32:40]}-{t[40:44]}-{t[44:48]}-{t[48:52]}-{t[52:]}",
    )


class GroupCommitError(Exception):
    """Redis did not take the batch, or the buffer is full: the caller answers 503."""


class QueueFull(GroupCommitError):
    """The queue holds its ceiling of messages: refused before Redis itself fills up."""


def encode_message(
    queue_name: str, actor_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[str, str, bytes]:
    """`(redis_message_id, message_id, data)` as `RedisBroker.enqueue` builds them, without a `Message` object.

    A `dramatiq.Message` costs ~45 µs to build and encode. This writes the same JSON (the fields of
    `Message` in its order, Dramatiq's separators; tests compare the bytes) for a few µs: the webhook
    path runs it once per request.
    """
    redis_message_id, message_id = message_ids()
    data = (
        f'{{"queue_name":{_dumps(queue_name)},"actor_name":{_dumps(actor_name)},"args":{_json_args(args)},'
        f'"kwargs":{_json_kwargs(kwargs)},"options":{{"redis_message_id":"{redis_message_id}"}},'
        f'"message_id":"{message_id}","message_timestamp":{int(time.time() * 1000)}}}'
    )
    return redis_message_id, message_id, data.encode()


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
        self._head: list[str | int] = [
            max_messages,
            pending_key(namespace, ""),
            seen_key(namespace, ""),
            PENDING_TTL,
            duplicate_window,
            WAKE_TOKENS,
        ]
        self.max_pending = max_pending
        self.max_batch = max_batch
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: redis.asyncio.Redis | None = None
        self._enqueue: Any = None
        self._pending: list[_Entry] = []
        self._writer: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def put(
        self, redis_message_id: str, data: bytes, session_id: str, event_id: str | None, event_at: int | None
    ) -> int:
        """Once Redis holds the message, or knows it needs none: 0 enqueued, 1 coalesced, 2 duplicate
        (coalesce.Admission). Raises QueueFull past the ceiling, GroupCommitError when Redis did not take it.
        `event_at`: the event's signed time (epoch ms), which a coalesced webhook leaves on the marker."""
        loop = self._bind()
        if len(self._pending) >= self.max_pending:
            raise GroupCommitError("enqueue buffer full")
        future: asyncio.Future[int] = loop.create_future()
        self._pending.append((redis_message_id, data, session_id, event_id or "", event_at or 0, future))
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
            self._pending = []
            self._writer = None
        return loop

    def _connect(self) -> redis.asyncio.Redis:
        # One connection: only the one writer task uses it, a batch at a time. The pool's checkout
        # and return (a lock, a readability check, connection-count bookkeeping) cost ~2.5 µs of
        # CPU per request at ~16 requests per batch. A broken connection is reopened on the next batch.
        return redis.asyncio.Redis.from_url(
            self.redis_url,
            socket_timeout=self.timeout,
            socket_connect_timeout=min(self.timeout, 3.0),
            single_connection_client=True,
        )

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                try:
                    async with asyncio.timeout(self.timeout):
                        verdicts = await self._write(batch)
                except Exception as exc:  # every Redis failure means the same to every waiter: 503
                    log.warning("group commit of %d messages failed: %s", len(batch), type(exc).__name__)
                    error = exc if isinstance(exc, QueueFull) else GroupCommitError(type(exc).__name__)
                    for *_, future in batch:
                        if not future.done():  # a waiter whose client went away was cancelled
                            future.set_exception(error)
                else:
                    for (*_, future), verdict in zip(batch, verdicts, strict=False):
                        if not future.done():
                            future.set_result(verdict)
        finally:
            self._writer = None

    async def _write(self, batch: list[_Entry]) -> list[int]:
        assert self._enqueue is not None  # noqa: S101 - bound in put()
        args: list[str | bytes | int] = [*self._head]
        for message_id, data, session_id, event_id, event_at, _ in batch:
            args += (message_id, data, session_id, event_id, event_at)
        answer = await self._enqueue(keys=self._keys, args=args)
        if answer == -1:
            raise QueueFull(f"the queue holds {self.max_messages} messages or more")
        verdicts = list(answer)
        if len(verdicts) != len(batch):  # never: but no waiter may be left without an answer
            raise GroupCommitError(f"{len(verdicts)} answers for {len(batch)} messages")
        return verdicts
