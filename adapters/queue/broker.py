"""The Dramatiq broker and the receiver's enqueueing of webhook events."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name
from dramatiq.middleware import CurrentMessage

from adapters.queue.coalesce import InProcessPending, PendingFetches, count
from adapters.queue.group_commit import GroupCommit, GroupCommitError, QueueFull
from adapters.queue.names import NAMESPACE, PROCESS_ACTOR, QUEUES, SESSIONS_QUEUE
from adapters.queue.stranded import StrandedSweeper, TrackingRedisBroker
from adapters.queue.wakeup import WakingRedisBroker
from config import Settings

log = logging.getLogger(__name__)


class EnqueueError(Exception):
    """The broker did not take the message; the webhook must be answered 503."""


class QueueFullError(EnqueueError):
    """The queue holds QUEUE_MAX_MESSAGES: refused so that the broker never runs out of room."""


class BrokerNotReady(Exception):
    """The broker answers but cannot take work: the message says why (for logs and /readyz)."""


# /readyz fails once Redis uses this share of its maxmemory: past it, workers soon cannot heartbeat.
MEMORY_HEADROOM = 0.9
READY_KEY_TTL_MS = 10_000


# A crashed worker's unacked messages return only once its heartbeat is older than the timeout AND a
# maintenance pass runs on that queue. Dramatiq's defaults (60 s; 1 in 1000 commands) make that minutes.
# A live worker heartbeats on every fetch, and idle consumers fetch at least every second, so 15 s
# leaves a wide margin against false deaths (which only cause a harmless duplicate: actors are
# idempotent). One command in ten doing maintenance costs two ZRANGEBYSCOREs when nobody died and
# finds a dead worker within a few seconds of polling.
# Operators change them with DRAMATIQ_HEARTBEAT_TIMEOUT and DRAMATIQ_MAINTENANCE_CHANCE (config.Settings).
HEARTBEAT_TIMEOUT_MS = Settings.dramatiq_heartbeat_timeout
MAINTENANCE_CHANCE = Settings.dramatiq_maintenance_chance  # per million broker commands


def build_broker(
    redis_url: str | None,
    namespace: str = NAMESPACE,
    *,
    worker: bool = False,
    heartbeat_timeout: int = HEARTBEAT_TIMEOUT_MS,
    maintenance_chance: int = MAINTENANCE_CHANCE,
    log_format: str | None = None,
    worker_redis_timeout: float = Settings.worker_redis_timeout,
) -> dramatiq.Broker:
    """RedisBroker when REDIS_URL is set, else the in-process broker of embedded mode.

    `worker=True` in Dramatiq worker processes: Prometheus and log-format middleware, which need the
    worker's process-boot signal (elsewhere Prometheus fails on enqueueing a retried message), and
    the stranded-message sweep (adapters/queue/stranded.py).
    """
    broker: dramatiq.Broker
    if redis_url:
        options: dict[str, Any] = {
            "namespace": namespace,
            "heartbeat_timeout": heartbeat_timeout,
            "maintenance_chance": maintenance_chance,
        }
        if worker:
            # A worker has nothing to do while Redis stalls but wait: a stall shorter than its timeout is
            # ridden out with nothing lost; past it, a fetch may strand messages, which the sweep requeues.
            client = _client(redis_url, worker_redis_timeout)
            broker = TrackingRedisBroker(client=client, fetch_timeout=worker_redis_timeout, **options)
            # Imported here: that module creates its metrics directory on import.
            from dramatiq.middleware.prometheus import Prometheus

            from adapters.logs import LogsAtBoot

            broker.add_middleware(Prometheus())
            broker.add_middleware(LogsAtBoot(log_format))
            broker.add_middleware(StrandedSweeper())
        else:
            # Its consumers (for tools that consume) wake when a message arrives (adapters/queue/wakeup.py).
            broker = WakingRedisBroker(client=_client(redis_url, 5), **options)
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    broker.add_middleware(CurrentMessage())
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker


def _client(redis_url: str, timeout: float) -> redis.Redis:
    # Built here because RedisBroker ignores socket options when given a URL.
    return redis.Redis.from_url(
        redis_url,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 3),
        socket_keepalive=True,
        health_check_interval=30,
    )


def broker_for(settings: Settings, *, worker: bool = False) -> dramatiq.Broker:
    """The broker these settings describe, tuning included."""
    return build_broker(
        settings.redis_url,
        worker=worker,
        heartbeat_timeout=settings.dramatiq_heartbeat_timeout,
        maintenance_chance=settings.dramatiq_maintenance_chance,
        log_format=settings.log_format,
        worker_redis_timeout=settings.worker_redis_timeout,
    )


def event_kwargs(event_id: str | None, event_at: int | None) -> dict[str, Any]:
    """The actor's keyword arguments: the event's id and its signed time (epoch milliseconds), when known."""
    if event_at is None:
        return {"event_id": event_id}
    return {"event_id": event_id, "event_at": event_at}


def session_event_message(session_id: str, event_id: str | None, event_at: int | None = None) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=SESSIONS_QUEUE,
        actor_name=PROCESS_ACTOR,
        args=(session_id,),
        kwargs=event_kwargs(event_id, event_at),
        options={},
    )


class SessionEvents:
    """Enqueues `session.status` events, one fetch per burst (adapters/queue/coalesce.py); the actor
    itself lives in `workers`.

    `max_messages` (QUEUE_MAX_MESSAGES): past it, events are refused with QueueFullError. `pending`:
    the embedded mode's markers, shared with the worker threads that take them (the dependencies'
    `pending`). `duplicate_window`: seconds a webhook event id is remembered.
    """

    def __init__(
        self,
        broker: dramatiq.Broker,
        redis_url: str | None = None,
        max_messages: int = Settings.queue_max_messages,
        *,
        pending: InProcessPending | None = None,
        duplicate_window: int = Settings.webhook_tolerance,
    ) -> None:
        self.broker = broker
        self.max_messages = max_messages
        self.pending = pending if pending is not None else InProcessPending(duplicate_window)
        self.group_commit: GroupCommit | None = None
        if isinstance(broker, RedisBroker):
            if redis_url is None:
                raise ValueError("a Redis broker's events need its URL: they are enqueued by group commit")
            # On Redis the event loop enqueues by group commit (enqueue_async): the ceiling, the markers
            # and the duplicates are all checked in its script.
            self.group_commit = GroupCommit(
                redis_url,
                broker.namespace,
                SESSIONS_QUEUE,
                PROCESS_ACTOR,
                max_messages=max_messages,
                duplicate_window=duplicate_window,
            )

    def enqueue(self, session_id: str, event_id: str | None, event_at: int | None = None) -> str | None:
        """The message id, or None when the webhook needed no message (coalesced or a duplicate).

        On Redis this plain enqueue (for tools and tests) neither sets nor honours the markers: the
        receiver goes by `enqueue_async`.
        """
        if self.group_commit is not None:
            return self._send(session_id, event_id, event_at)

        def send() -> str:
            if self._held_in_process() >= self.max_messages:
                raise QueueFullError(f"the queue holds {self.max_messages} messages or more")
            return self._send(session_id, event_id, event_at)

        admission, message_id = self.pending.enqueue(session_id, event_id, event_at, send)
        count(admission)
        return message_id

    def _send(self, session_id: str, event_id: str | None, event_at: int | None) -> str:
        try:
            message = self.broker.enqueue(session_event_message(session_id, event_id, event_at))
        except Exception as exc:  # every broker error means the same thing to the caller
            log.warning("enqueue failed for session %s: %s", session_id, type(exc).__name__)
            raise EnqueueError(str(exc)) from exc
        return message.message_id

    def _held_in_process(self) -> int:
        """Messages the in-process broker holds for the sessions queue: waiting, in flight or delayed
        (`unfinished_tasks`: put and not yet acknowledged, as StubBroker.join counts them)."""
        if not isinstance(self.broker, StubBroker):
            return 0
        queues = self.broker.queues
        return sum(
            queues[name].unfinished_tasks for name in (SESSIONS_QUEUE, dq_name(SESSIONS_QUEUE)) if name in queues
        )

    async def enqueue_async(self, session_id: str, event_id: str | None, event_at: int | None = None) -> str | None:
        """For the event loop: held by the broker on return (or needing no message: None), without
        blocking the loop; else EnqueueError.

        The in-process broker answers at once; Redis goes by group commit.
        """
        if self.group_commit is None:
            return self.enqueue(session_id, event_id, event_at)
        try:
            answer = await self.group_commit.put(session_id, event_id, event_at)
        except QueueFull as exc:
            raise QueueFullError(str(exc)) from exc
        except GroupCommitError as exc:
            raise EnqueueError(str(exc)) from exc
        if isinstance(answer, int):
            count(answer)
            return None
        return answer.decode()

    def ping(self) -> None:
        """Ready to take work: Redis takes a write and has headroom below its maxmemory. Raises otherwise."""
        if not isinstance(self.broker, RedisBroker):
            return
        client = self.broker.client
        client.set(f"{self.broker.namespace}:readyz", "1", px=READY_KEY_TTL_MS)  # fails with OOM when full
        memory = client.info("memory")
        used, ceiling = int(memory.get("used_memory", 0)), int(memory.get("maxmemory", 0))
        if ceiling and used >= MEMORY_HEADROOM * ceiling:
            raise BrokerNotReady(f"Redis uses {used * 100 // ceiling}% of its maxmemory")


def session_events(broker: dramatiq.Broker, settings: Settings, pending: PendingFetches) -> SessionEvents:
    """The receiver's enqueuer for these settings; in embedded mode it shares the markers with the
    worker threads that take them (`pending`, the dependencies' own)."""
    return SessionEvents(
        broker,
        settings.redis_url,
        settings.queue_max_messages,
        pending=pending if isinstance(pending, InProcessPending) else None,
        duplicate_window=settings.webhook_tolerance,
    )
