"""Idle Redis consumers that wake when a message arrives, instead of polling with a growing backoff.

Dramatiq's Redis consumer polls an empty queue with a backoff that grows up to the worker timeout
(1 s), so the first message after a quiet spell waits up to that long. Here every enqueue also
pushes a token onto a short per-queue list (the receiver's group commit does it in its script,
`WakingRedisBroker.enqueue` for everything else), and an idle consumer blocks on that list with
BLPOP for at most the worker timeout: a message is fetched within a round trip of its arrival,
and an idle consumer costs one fetch and one BLPOP per worker timeout (two commands a second per
queue at Dramatiq's default), about what the stock backoff costs at its slowest.

Only Dramatiq's public extension points are used: `Broker.consume` and the `Consumer` interface.
The stock consumer does the fetching, acks and requeues; it is given a 1 ms timeout so that it
never sleeps itself, and this wrapper decides how to wait. A consumer whose threads are all busy
waits for one of its messages to be settled instead, so a backlog is drained without pauses.
The tokens are a hint: a message whose token was lost (or that no enqueue announced, as the
messages Dramatiq's maintenance returns) is still found by the next fetch, at most a timeout later.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import redis
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message

from adapters.queue.group_commit import WAKE_TOKENS, wake_key

MAX_WAIT_SECONDS = 4.0  # below the broker client's 5 s socket timeout, so a BLPOP never times the socket out


class WakingRedisBroker(RedisBroker):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)  # type: ignore[no-untyped-call]  # RedisBroker's constructor has no annotations

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        enqueued = super().enqueue(message, delay=delay)
        key = wake_key(self.namespace, enqueued.queue_name)  # the delay queue's, for a delayed message
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.lpush(key, "1")
            pipe.ltrim(key, 0, WAKE_TOKENS - 1)
            pipe.execute()
        except redis.RedisError:
            pass  # the message is held; without its token it is found by the next poll
        return enqueued

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        inner = super().consume(queue_name, prefetch, timeout=1)
        return WakingConsumer(inner, self.client, wake_key(self.namespace, queue_name), prefetch, timeout)


class WakingConsumer(Consumer):
    def __init__(self, inner: Consumer, client: redis.Redis, key: str, prefetch: int, timeout_ms: int) -> None:
        self.inner = inner
        self.client = client
        self.key = key
        self.prefetch = prefetch
        self.wait_seconds = min(MAX_WAIT_SECONDS, max(0.001, timeout_ms / 1000))
        self._held: set[str] = set()  # ids of the messages handed out and not yet acked or nacked
        self._lock = threading.Lock()
        self._settled = threading.Event()

    def __next__(self) -> MessageProxy | None:
        with self._lock:
            busy = len(self._held) >= self.prefetch
        if busy:
            # The stock consumer would not fetch now: wait for a worker thread to finish one.
            self._settled.wait(self.wait_seconds)
            self._settled.clear()
            return None
        message = next(self.inner)
        if message is not None:
            with self._lock:
                self._held.add(message.message_id)
            return message
        self._idle()
        return None

    def _idle(self) -> None:
        try:
            self.client.blpop([self.key], timeout=self.wait_seconds)
        except redis.TimeoutError:
            return
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None

    def ack(self, message: MessageProxy) -> None:
        try:
            self.inner.ack(message)
        finally:  # as the stock consumer: a message whose ack failed is no longer counted as held
            self._settle(message)

    def nack(self, message: MessageProxy) -> None:
        try:
            self.inner.nack(message)
        finally:
            self._settle(message)

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        self.inner.requeue(messages)

    def close(self) -> None:
        self.inner.close()

    def _settle(self, message: MessageProxy) -> None:
        with self._lock:
            self._held.discard(message.message_id)
        self._settled.set()
