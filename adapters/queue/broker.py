"""The Dramatiq broker and the receiver's enqueueing of webhook events."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage

from adapters.queue.group_commit import GroupCommit, GroupCommitError, encode_message
from adapters.queue.names import NAMESPACE, PROCESS_ACTOR, QUEUES, SESSIONS_QUEUE
from config import Settings

log = logging.getLogger(__name__)


class EnqueueError(Exception):
    """The broker did not take the message; the webhook must be answered 503."""


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
) -> dramatiq.Broker:
    """RedisBroker when REDIS_URL is set, else the in-process broker of embedded mode.

    `worker=True` in Dramatiq worker processes: Prometheus and log-format middleware, which need the
    worker's process-boot signal (elsewhere Prometheus fails on enqueueing a retried message).
    """
    broker: dramatiq.Broker
    if redis_url:
        # The client is built here because RedisBroker ignores socket options when given a URL.
        client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=3, health_check_interval=30)
        broker = RedisBroker(
            client=client,
            namespace=namespace,
            heartbeat_timeout=heartbeat_timeout,
            maintenance_chance=maintenance_chance,
        )
        if worker:
            # Imported here: that module creates its metrics directory on import.
            from dramatiq.middleware.prometheus import Prometheus

            from adapters.logs import LogsAtBoot

            broker.add_middleware(Prometheus())
            broker.add_middleware(LogsAtBoot(log_format))
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    broker.add_middleware(CurrentMessage())
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker


def broker_for(settings: Settings, *, worker: bool = False) -> dramatiq.Broker:
    """The broker these settings describe, tuning included."""
    return build_broker(
        settings.redis_url,
        worker=worker,
        heartbeat_timeout=settings.dramatiq_heartbeat_timeout,
        maintenance_chance=settings.dramatiq_maintenance_chance,
        log_format=settings.log_format,
    )


def session_event_message(session_id: str, event_id: str | None) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=SESSIONS_QUEUE,
        actor_name=PROCESS_ACTOR,
        args=(session_id,),
        kwargs={"event_id": event_id},
        options={},
    )


class SessionEvents:
    """Enqueues `session.status` events; the actor itself lives in `workers`."""

    def __init__(self, broker: dramatiq.Broker, redis_url: str | None = None) -> None:
        self.broker = broker
        self.group_commit: GroupCommit | None = None
        if isinstance(broker, RedisBroker):
            if redis_url is None:
                raise ValueError("a Redis broker's events need its URL: they are enqueued by group commit")
            # On Redis the event loop enqueues by group commit (enqueue_async).
            self.group_commit = GroupCommit(redis_url, broker.namespace, SESSIONS_QUEUE)

    def enqueue(self, session_id: str, event_id: str | None) -> str:
        try:
            message = self.broker.enqueue(session_event_message(session_id, event_id))
        except Exception as exc:  # every broker error means the same thing to the caller
            log.warning("enqueue failed for session %s: %s", session_id, type(exc).__name__)
            raise EnqueueError(str(exc)) from exc
        return message.message_id

    async def enqueue_async(self, session_id: str, event_id: str | None) -> str:
        """For the event loop: held by the broker on return, without blocking the loop; else EnqueueError.

        The in-process broker answers at once; Redis goes by group commit.
        """
        if self.group_commit is None:
            return self.enqueue(session_id, event_id)
        redis_message_id, message_id, data = encode_message(
            SESSIONS_QUEUE, PROCESS_ACTOR, (session_id,), {"event_id": event_id}
        )
        try:
            await self.group_commit.put(redis_message_id, data)
        except GroupCommitError as exc:
            raise EnqueueError(str(exc)) from exc
        return message_id

    def ping(self) -> None:
        if isinstance(self.broker, RedisBroker):
            self.broker.client.ping()
