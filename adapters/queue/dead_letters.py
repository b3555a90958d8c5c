"""Dead letters of Dramatiq's RedisBroker: list them, and replay them through the broker.

Layout (dramatiq/brokers/redis/dispatch.lua): a nacked message leaves `<ns>:<queue>.msgs` for the
sorted set `<ns>:<queue>.XQ` (score: when it died, in ms) and the hash `<ns>:<queue>.XQ.msgs`
(Redis message id -> the message as Dramatiq encoded it). Dramatiq keeps them 7 days and has no
tool to look at them; this is that tool, decoding with Dramatiq's own `Message.decode`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import q_name

from adapters.queue.names import PROCESS_ACTOR, QUEUES

# A replay claims the dead letter for this long; a replayer that dies mid-way lets another retry it.
CLAIM_MS = 60_000
# Options of the dead message that must not follow it: a replay starts with a full set of retries.
DROPPED_OPTIONS = ("redis_message_id", "retries", "traceback", "requeue_timestamp", "eta")


class DeadLetterError(Exception):
    """Dead letters cannot be read or replayed: not in Redis mode, or Redis did not answer."""


class NotRedis(DeadLetterError):
    """Dead letters live in Redis; embedded mode keeps none across restarts."""


@contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise DeadLetterError(f"Redis: {type(exc).__name__}: {exc}") from None


@dataclass(frozen=True)
class DeadLetter:
    message_id: str  # Dramatiq's message id (the audit log's `messageId`)
    redis_id: str  # the key inside the dead-letter hash
    queue: str
    actor: str
    session_id: str | None
    failure: str
    dead_at_ms: int
    message: dramatiq.Message[Any]

    def age_seconds(self, now_ms: int | None = None) -> float:
        return max(0.0, ((now_ms if now_ms is not None else _now_ms()) - self.dead_at_ms) / 1000)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _keys(broker: RedisBroker, queue: str) -> tuple[str, str]:
    xq = f"{broker.namespace}:{queue}.XQ"
    return xq, f"{xq}.msgs"


def _redis(broker: dramatiq.Broker) -> RedisBroker:
    if not isinstance(broker, RedisBroker):
        raise NotRedis("dead letters are kept only with REDIS_URL set (Redis mode)")
    return broker


def failure_of(message: dramatiq.Message[Any]) -> str:
    """The last line of the traceback Dramatiq's Retries middleware stored, or what is known."""
    trace = message.options.get("traceback")
    if isinstance(trace, str) and trace.strip():
        return trace.strip().splitlines()[-1][:200]
    retries = message.options.get("retries")
    return f"failed after {retries} retries" if retries else "rejected (no traceback recorded)"


def _letter(queue: str, redis_id: str, data: bytes, score: float) -> DeadLetter:
    message = dramatiq.Message.decode(data)
    session_id = message.args[0] if message.actor_name == PROCESS_ACTOR and message.args else None
    return DeadLetter(
        message_id=message.message_id,
        redis_id=redis_id,
        queue=queue,
        actor=message.actor_name,
        session_id=str(session_id) if session_id is not None else None,
        failure=failure_of(message),
        dead_at_ms=int(score),
        message=message,
    )


def list_dead_letters(broker: dramatiq.Broker, queues: Iterable[str] = QUEUES) -> list[DeadLetter]:
    """Oldest first, queue by queue."""
    with _redis_errors():
        return list(_letters(_redis(broker), queues))


def _letters(redis_broker: RedisBroker, queues: Iterable[str]) -> Iterator[DeadLetter]:
    client = redis_broker.client
    for queue in queues:
        xq, xq_msgs = _keys(redis_broker, queue)
        entries = client.zrange(xq, 0, -1, withscores=True)
        if not entries:
            continue
        ids = [entry[0] for entry in entries]
        for (raw_id, score), data in zip(entries, client.hmget(xq_msgs, ids), strict=True):
            if data is None:  # expired between the two reads
                continue
            redis_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            yield _letter(queue, redis_id, data, score)


def find(broker: dramatiq.Broker, message_id: str) -> DeadLetter | None:
    """By Dramatiq message id or by Redis message id."""
    for letter in list_dead_letters(broker):
        if message_id in (letter.message_id, letter.redis_id):
            return letter
    return None


def replay_letter(broker: dramatiq.Broker, letter: DeadLetter) -> bool:
    """Enqueue it again with fresh retries, then remove it; False if someone else replays or replayed it.

    The claim makes concurrent replays of one letter enqueue it once; the enqueue comes before the
    removal so that a crash in between can cause a second delivery (harmless: actors are idempotent)
    but never a loss.
    """
    redis_broker = _redis(broker)
    client = redis_broker.client
    xq, xq_msgs = _keys(redis_broker, letter.queue)
    claim = f"{xq}.replaying:{letter.redis_id}"
    if not client.set(claim, "1", nx=True, px=CLAIM_MS):
        return False
    try:
        if client.zscore(xq, letter.redis_id) is None:
            return False  # replayed (or expired) since it was listed
        options = {k: v for k, v in letter.message.options.items() if k not in DROPPED_OPTIONS}
        options["replays"] = int(options.get("replays", 0)) + 1
        fresh = dataclasses.replace(letter.message, queue_name=q_name(letter.message.queue_name), options=options)
        redis_broker.enqueue(fresh)
        pipe = client.pipeline(transaction=True)
        pipe.zrem(xq, letter.redis_id)
        pipe.hdel(xq_msgs, letter.redis_id)
        pipe.execute()
        return True
    finally:
        client.delete(claim)


def replay(broker: dramatiq.Broker, message_id: str) -> bool:
    letter = find(broker, message_id)
    with _redis_errors():
        return letter is not None and replay_letter(broker, letter)


def replay_all(broker: dramatiq.Broker) -> int:
    letters = list_dead_letters(broker)
    with _redis_errors():
        return sum(replay_letter(broker, letter) for letter in letters)
