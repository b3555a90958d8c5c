"""The Dramatiq actors. `dramatiq workers.actors` (or `facesign-recovery worker`) runs them."""

from __future__ import annotations

import functools
import logging

import dramatiq
from dramatiq.middleware import CurrentMessage

import workers.broker  # noqa: F401  (sets the global broker before any actor is declared)
from adapters.broker import MAIL_ACTOR, MAIL_QUEUE, PROCESS_ACTOR, SESSIONS_QUEUE, DirectQueue
from adapters.facesign import FaceSignRejected
from adapters.logs import session_context
from domain.report import ReportError
from workers import context, decisions, mail

log = logging.getLogger(__name__)

# Bounded: about 10 minutes of backoff in all, then the dead-letter queue.
RETRY_OPTIONS = {"max_retries": 8, "min_backoff": 1_000, "max_backoff": 120_000}


def _message_id() -> str | None:
    message = CurrentMessage.get_current_message()
    return message.message_id if message else None


@dramatiq.actor(
    actor_name=PROCESS_ACTOR,
    queue_name=SESSIONS_QUEUE,
    time_limit=120_000,
    throws=(FaceSignRejected, ReportError),
    **RETRY_OPTIONS,
)
def process_session_event(session_id: str, event_id: str | None = None) -> None:
    with session_context(session_id):
        result = decisions.process_session_event(context.current(), session_id, event_id, _message_id())
    if result.mail_id:
        mail_queue(send_reset_email.broker).send(result.mail_id)


@dramatiq.actor(actor_name=MAIL_ACTOR, queue_name=MAIL_QUEUE, time_limit=60_000, **RETRY_OPTIONS)
def send_reset_email(mail_id: str) -> None:
    mail.send_reset_email(context.current(), mail_id)


@functools.cache
def mail_queue(broker: dramatiq.Broker) -> DirectQueue:
    """`send_reset_email.send`, for less CPU and fewer GIL hand-overs per decision (DirectQueue)."""
    return DirectQueue(broker, MAIL_QUEUE, MAIL_ACTOR)


ACTORS = (process_session_event, send_reset_email)


def bind(broker: dramatiq.Broker) -> None:
    """Declare the actors on another broker (tests, and processes that build their own)."""
    for actor in ACTORS:
        actor.broker = broker
        broker.declare_actor(actor)
