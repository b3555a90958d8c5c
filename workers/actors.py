"""The Dramatiq actors. `dramatiq workers.actors` (or `facesign-recovery worker`) runs them."""

from __future__ import annotations

import logging
import math
import random
import time
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

import workers.broker  # noqa: F401  (sets the global broker before any actor is declared)
from adapters.facesign.client import BudgetExhausted, FaceSignRejected
from adapters.logs import log_context
from adapters.queue.coalesce import queue_metrics
from adapters.queue.names import (
    APP_EVENT_ACTOR,
    APP_EVENTS_QUEUE,
    MAIL_ACTOR,
    MAIL_QUEUE,
    PROCESS_ACTOR,
    SESSIONS_QUEUE,
)
from domain.report import ReportError
from domain.times import from_epoch_ms
from usecases import app_events, decide, send_mail
from workers import context

log = logging.getLogger(__name__)

# Bounded: about 10 minutes of backoff in all, then the dead-letter queue.
RETRY_OPTIONS: dict[str, Any] = {"max_retries": 8, "min_backoff": 1_000, "max_backoff": 120_000}


def _message_id() -> str | None:
    message = CurrentMessage.get_current_message()
    return message.message_id if message else None


def _wait_for_budget(actor: dramatiq.Actor[Any, Any], wait: float) -> None:
    """The same message again once FaceSign's budget has room: a new delivery, not a retry, so that
    waiting never counts toward its retries nor leads to the dead-letter queue. The jitter spreads
    the messages that wait for one freed token."""
    message = CurrentMessage.get_current_message()
    if message is None:
        raise RuntimeError("waiting for budget outside a message")
    delay = wait * (1 + random.random() / 4)  # noqa: S311 - jitter
    actor.broker.enqueue(message, delay=max(1, int(delay * 1000)))


def _decided(status: str) -> None:
    message = CurrentMessage.get_current_message()
    if message is not None and status in ("approved", "denied"):
        queue_metrics().decision_latency.observe(max(0.0, time.time() - message.message_timestamp / 1000))


@dramatiq.actor(
    actor_name=PROCESS_ACTOR,
    queue_name=SESSIONS_QUEUE,
    time_limit=120_000,
    throws=(FaceSignRejected, ReportError),
    **RETRY_OPTIONS,
)
def process_session_event(session_id: str, event_id: str | None = None, event_at: int | None = None) -> None:
    """`event_at`: the status event's signed time in epoch milliseconds (absent from older messages)."""
    with log_context(session_id=session_id, event_id=event_id):
        try:
            result = decide.process_session_event(
                context.current(), session_id, event_id, _message_id(), from_epoch_ms(event_at)
            )
        except BudgetExhausted as exc:
            log.debug("waiting %.2f s for FaceSign budget", exc.retry_after)  # counted in the metrics
            _wait_for_budget(process_session_event, exc.retry_after)
            return
    _decided(result.status)
    if result.mail_id:
        send_reset_email.send(result.mail_id)
    for delivery_id in result.deliveries:
        deliver_app_event.send(delivery_id)


@dramatiq.actor(actor_name=MAIL_ACTOR, queue_name=MAIL_QUEUE, time_limit=60_000, **RETRY_OPTIONS)
def send_reset_email(mail_id: str) -> None:
    """Any queued email: the reset link or an alert to the account's owner."""
    send_mail.send_reset_email(context.current(), mail_id)


@dramatiq.actor(actor_name=APP_EVENT_ACTOR, queue_name=APP_EVENTS_QUEUE, time_limit=60_000, **RETRY_OPTIONS)
def deliver_app_event(delivery_id: int) -> None:
    """One attempt at one event for one URL; a failure schedules the next attempt with backoff.
    (Dramatiq's own retries are for errors of ours, such as the database being away.)"""
    retry_in = app_events.deliver(context.current(), delivery_id)
    if retry_in is not None:
        deliver_app_event.send_with_options(args=(delivery_id,), delay=math.ceil(retry_in * 1000))


ACTORS = (process_session_event, send_reset_email, deliver_app_event)


def bind(broker: dramatiq.Broker) -> None:
    """Declare the actors on another broker (tests, and processes that build their own)."""
    for actor in ACTORS:
        actor.broker = broker
        broker.declare_actor(actor)
