"""Events for the customer's application: written with what they report, delivered at least once.

A delivery is retried with exponential backoff for APP_WEBHOOK_RETRY_WINDOW seconds (a day by
default), then left as a dead letter that an operator replays.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.db import app_events as outbox
from adapters.db.engine import Session
from config import Settings
from domain import app_events as events
from usecases.deps import Deps

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=30)  # longer than one attempt can take (the 10 s timeout, twice, and margin)


def utcnow() -> datetime:
    return datetime.now(UTC)


def emit(session: Session, settings: Settings, event: tuple[str, dict[str, Any]], now: datetime) -> list[int]:
    """Write the event in the caller's transaction; returns the delivery ids to enqueue."""
    if not settings.app_webhook_urls:
        return []
    event_type, data = event
    body = events.body(event_type, now, data)
    _, deliveries = outbox.add_event(session, event_type, body, now, settings.app_webhook_urls)
    return deliveries


def emit_decision(
    session: Session, settings: Settings, record: Mapping[str, Any], locked_until: datetime | None, now: datetime
) -> list[int]:
    """The decision's event, and `recovery.locked` when this refusal locked the user."""
    deliveries = emit(session, settings, events.decision_event(record), now)
    user_id = record.get("matchedUserId")
    if locked_until is not None and user_id:
        lock = events.lock_event(record["attemptId"], record["sessionId"], user_id, locked_until)
        deliveries += emit(session, settings, lock, now)
    return deliveries


def deliver(deps: Deps, delivery_id: int, now: datetime | None = None) -> float | None:
    """One attempt. Returns the seconds until the next attempt when this one failed and the window
    is still open, or when it is not due yet; None when delivered, dead-lettered, or not this
    caller's to send."""
    settings = deps.settings
    now = now or utcnow()
    with deps.db.transaction() as session:
        claimed = outbox.claim(session, delivery_id, now, now + LEASE)
        due = outbox.pending_until(session, delivery_id) if claimed is None else None
    if claimed is None:
        # Someone else's, or finished; or pending and not yet due, because its delayed message came a
        # little early (broker times are whole milliseconds, another host's clock may be ahead): then
        # the message comes back when it is due rather than leave the delivery for the reconciler.
        return (due - now).total_seconds() if due is not None and due > now else None
    error = deps.event_sender.post(claimed.url, claimed.event_id, claimed.body, utcnow())
    finished = utcnow()
    if error is None:
        with deps.db.transaction() as session:
            outbox.delivered(session, delivery_id, finished)
        log.info("event %s delivered (attempt %d)", claimed.event_id, claimed.attempts)
        return None
    window_ends = claimed.window_started_at + timedelta(seconds=settings.app_webhook_retry_window)
    jitter = random.uniform(0.8, 1.0)  # noqa: S311  (spreads retries; not a secret)
    delay = events.retry_delay(claimed.attempts, settings.app_webhook_retry_window, jitter)
    retry_at = min(finished + timedelta(seconds=delay), window_ends) if finished < window_ends else None
    with deps.db.transaction() as session:
        outbox.failed(session, delivery_id, error, retry_at)
    if retry_at is None:
        log.warning("event %s: not delivered within the retry window (%s); now a dead letter", claimed.event_id, error)
        return None
    log.info("event %s: attempt %d failed (%s); next in %.1fs", claimed.event_id, claimed.attempts, error, delay)
    return max(0.0, (retry_at - finished).total_seconds())


def stranded(deps: Deps, now: datetime, grace: timedelta, limit: int) -> list[int]:
    """Deliveries a lost message or a dead worker left behind, for the reconciler to enqueue again."""
    with deps.db.reading() as session:
        return list(outbox.stranded(session, now - grace, now, limit))


def replay(deps: Deps, event_id: str | None, now: datetime | None = None) -> list[int] | None:
    """Dead letters back to pending (one event's deliveries, or all dead letters); None for an unknown event."""
    with deps.db.transaction() as session:
        if event_id is not None and not outbox.known(session, event_id):
            return None
        return outbox.replay(session, now or utcnow(), event_id)


def listing(deps: Deps, failed_only: bool, limit: int = 1000) -> list[outbox.Listed]:
    with deps.db.reading() as session:
        return outbox.listing(session, failed_only, limit)


@dataclass(frozen=True)
class Stats:
    deliveries: dict[str, int]
    oldest_undelivered_age: float  # seconds; 0 when everything is delivered


def stats(deps: Deps, now: datetime | None = None) -> Stats:
    with deps.db.reading() as session:
        counts, oldest = outbox.totals(session)
    age = ((now or utcnow()) - oldest).total_seconds() if oldest is not None else 0.0
    return Stats(counts, max(0.0, age))
