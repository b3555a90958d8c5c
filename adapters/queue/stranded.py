"""Messages stranded in a live worker's acknowledgement set go back to their queue within a minute.

Dramatiq's Redis fetch is one script: it moves message ids from the queue into the worker's
acknowledgement set (`<ns>:__acks__.<broker id>.<queue>`) and returns their bodies. When Redis
stalls longer than the client's socket timeout, the client gives up while the server still runs the
script once the stall ends: the ids land in the set, the bodies are lost on a closed connection,
and the worker never learns of them. Dramatiq's maintenance only requeues the sets of workers whose
heartbeat stopped, and this worker's heartbeat goes on, so the messages stay there until the worker
restarts. (A delay-queue consumer that hits a connection error likewise drops the delayed messages
it held in memory without requeueing them. And when its closing `requeue` fails with anything but a
connection error, such as Redis out of memory, that error would end the consumer thread for good:
`TrackingConsumer.requeue` logs it instead and lets the ids, still in the acknowledgement set and
no longer held, fall to the sweep.)

So each worker process keeps, per queue, the ids its consumers handed it and it has not yet
acknowledged (through the public `Broker.consume` and `Consumer` interfaces), and a thread compares
that with the acknowledgement set every few seconds: an id in the set that this process has not
held for longer than a fetch can take (the socket timeout plus a margin) is requeued with the
broker's own `requeue` command, the one Dramatiq's consumers use on shutdown. A message requeued by
mistake is processed twice, which the actors tolerate (they are idempotent); a stranded one would
wait for a restart. The acknowledgement set's key is Dramatiq's Redis layout, the same coupling as
the receiver's group commit; tests/integration/test_stranded.py holds it to the installed Dramatiq.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import dramatiq
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.errors import BrokerConnectionError
from dramatiq.middleware import Middleware

from adapters.queue.wakeup import WakingRedisBroker

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 5.0  # seconds between looks at this process's acknowledgement sets


class HeldMessages:
    """Redis message ids this process's consumers yielded and it has not yet acked, nacked or requeued."""

    def __init__(self) -> None:
        self._held: dict[str, set[str]] = defaultdict(set)
        self._lock = threading.Lock()

    def add(self, queue_name: str, redis_message_id: str) -> None:
        with self._lock:
            self._held[queue_name].add(redis_message_id)

    def discard(self, queue_name: str, redis_message_ids: Iterable[str]) -> None:
        with self._lock:
            self._held[queue_name].difference_update(redis_message_ids)

    def forget(self, queue_name: str) -> None:
        with self._lock:
            self._held[queue_name].clear()

    def of(self, queue_name: str) -> set[str]:
        with self._lock:
            return set(self._held[queue_name])


def _redis_id(message: MessageProxy) -> str:
    return str(message.options.get("redis_message_id", ""))


class TrackingConsumer(Consumer):
    """Wraps a broker's consumer and records which messages this process holds."""

    def __init__(self, inner: Consumer, queue_name: str, held: HeldMessages) -> None:
        self.inner = inner
        self.queue_name = queue_name
        self.held = held

    def __iter__(self) -> TrackingConsumer:
        return self

    def __next__(self) -> MessageProxy | None:
        message = next(self.inner)
        if message is not None:
            self.held.add(self.queue_name, _redis_id(message))
        return message

    def ack(self, message: MessageProxy) -> None:
        self._settle(self.inner.ack, message)

    def nack(self, message: MessageProxy) -> None:
        self._settle(self.inner.nack, message)

    def _settle(self, operation: Any, message: MessageProxy) -> None:
        try:
            operation(message)
        except BrokerConnectionError:
            raise  # Dramatiq retries this ack until Redis answers: the message is still held
        except BaseException:
            # Dramatiq gives up on this ack (a timeout, say): the id stays in Redis's set, unheld, and is
            # requeued by the sweep, so the message is processed again rather than lost.
            self.held.discard(self.queue_name, [_redis_id(message)])
            raise
        self.held.discard(self.queue_name, [_redis_id(message)])

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        messages = list(messages)
        try:
            self.inner.requeue(messages)
        except BrokerConnectionError:
            raise  # Dramatiq's consumer thread expects this one and carries on
        except Exception as exc:
            # Anything else (Redis out of memory) would escape the consumer's close and end its
            # thread. The ids stay in the acknowledgement set, no longer held: the sweep requeues them.
            log.warning(
                "requeue of %d messages on %s failed (%s); the sweep will requeue them",
                len(messages),
                self.queue_name,
                type(exc).__name__,
            )
        finally:
            self.held.discard(self.queue_name, [_redis_id(message) for message in messages])

    def close(self) -> None:
        self.inner.close()


class TrackingRedisBroker(WakingRedisBroker):
    """A worker's Redis broker: its consumers wake when a message arrives (adapters/queue/wakeup.py)
    and record what this process holds, for `StrandedSweeper`."""

    def __init__(self, *, fetch_timeout: float, **options: Any) -> None:
        super().__init__(**options)
        self.held = HeldMessages()
        self.fetch_timeout = fetch_timeout  # the client's socket timeout: no fetch answers later than this

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        if queue_name in self.get_declared_delay_queues():
            # A delay-queue consumer is only replaced after an error; what its predecessor held in memory
            # is gone (requeued on a clean close, dropped on a connection error): let the sweep judge it.
            self.held.forget(queue_name)
        return TrackingConsumer(super().consume(queue_name, prefetch, timeout), queue_name, self.held)

    def acks_key(self, queue_name: str) -> str:
        return f"{self.namespace}:__acks__.{self.broker_id}.{queue_name}"


class StrandedSweeper(Middleware):
    """Runs the sweep in every worker process while its worker runs."""

    def __init__(self, interval: float = SWEEP_INTERVAL) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if not isinstance(broker, TrackingRedisBroker):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(broker,), name="stranded-sweeper", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()

    def _run(self, broker: TrackingRedisBroker) -> None:
        sweep = Sweep(broker, grace=broker.fetch_timeout + self.interval)
        while not self._stop.wait(self.interval):
            try:
                sweep.once(time.monotonic())
            except Exception as exc:  # Redis down or stalled: the next sweep looks again
                log.warning("stranded-message sweep failed: %s", type(exc).__name__)


class Sweep:
    """One process's view of its acknowledgement sets over time."""

    def __init__(self, broker: TrackingRedisBroker, grace: float) -> None:
        self.broker = broker
        self.grace = grace
        self.unheld_since: dict[tuple[str, str], float] = {}

    def once(self, now: float) -> int:
        """Requeue what has been in the sets unheld for longer than the grace; returns how many."""
        broker = self.broker
        queues = sorted(broker.get_declared_queues() | broker.get_declared_delay_queues())
        pipe = broker.client.pipeline(transaction=False)
        for queue_name in queues:
            pipe.smembers(broker.acks_key(queue_name))
        seen: dict[tuple[str, str], float] = {}
        requeued = 0
        for queue_name, members in zip(queues, pipe.execute(), strict=True):
            unheld = {member.decode() for member in members} - broker.held.of(queue_name)
            stranded = []
            for redis_message_id in unheld:
                key = (queue_name, redis_message_id)
                since = seen[key] = self.unheld_since.get(key, now)
                if now - since >= self.grace:
                    stranded.append(redis_message_id)
            if stranded:
                log.warning("requeueing %d messages stranded in this worker's %s acks", len(stranded), queue_name)
                broker.do_requeue(queue_name, *stranded)
                requeued += len(stranded)
                for redis_message_id in stranded:
                    seen.pop((queue_name, redis_message_id), None)
        self.unheld_since = seen
        return requeued
