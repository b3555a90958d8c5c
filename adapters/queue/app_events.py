"""Enqueueing deliveries of the application's events by actor name (the actor lives in `workers`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import dramatiq

from adapters.queue.names import APP_EVENT_ACTOR, APP_EVENTS_QUEUE

log = logging.getLogger(__name__)


def delivery_message(delivery_id: int) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=APP_EVENTS_QUEUE, actor_name=APP_EVENT_ACTOR, args=(delivery_id,), kwargs={}, options={}
    )


class EventDeliveries:
    """Hands event deliveries to the workers. Best effort: the event is already stored, and the
    reconciler enqueues any delivery whose message never arrived."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker

    def enqueue_one(self, delivery_id: int) -> None:
        self.enqueue((delivery_id,))

    def enqueue(self, delivery_ids: Sequence[int]) -> None:
        try:
            for delivery_id in delivery_ids:
                self.broker.enqueue(delivery_message(delivery_id))
        except Exception as exc:  # every broker error means the same: the reconciler will do it
            log.warning("event deliveries not enqueued (%s); the reconciler will", type(exc).__name__)
