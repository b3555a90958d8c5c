"""The Dramatiq broker, and the one small function the receiver enqueues through."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage

log = logging.getLogger(__name__)

SESSIONS_QUEUE = "sessions"
MAIL_QUEUE = "mail"
PROCESS_ACTOR = "process_session_event"
MAIL_ACTOR = "send_reset_email"
NAMESPACE = "facesign-recovery"


class EnqueueError(Exception):
    """The broker did not take the message; the webhook must be answered 503."""


def build_broker(redis_url: str | None, namespace: str = NAMESPACE) -> dramatiq.Broker:
    """RedisBroker when REDIS_URL is set, else the in-process broker of embedded mode."""
    broker: dramatiq.Broker
    if redis_url:
        # The client is built here because RedisBroker ignores socket options when given a URL.
        client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=3, health_check_interval=30)
        broker = RedisBroker(client=client, namespace=namespace)
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    broker.add_middleware(CurrentMessage())
    for queue in (SESSIONS_QUEUE, MAIL_QUEUE):
        broker.declare_queue(queue)
    return broker


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

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker
        # The in-process broker answers at once; only a network broker needs a thread.
        self.in_process = isinstance(broker, StubBroker)

    def enqueue(self, session_id: str, event_id: str | None) -> str:
        try:
            message = self.broker.enqueue(session_event_message(session_id, event_id))
        except Exception as exc:  # every broker error means the same thing to the caller
            log.warning("enqueue failed for session %s: %s", session_id, type(exc).__name__)
            raise EnqueueError(str(exc)) from exc
        return message.message_id

    def ping(self) -> None:
        if isinstance(self.broker, RedisBroker):
            self.broker.client.ping()
