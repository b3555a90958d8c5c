"""The events outbox for the customer's application: one row per event, one per event and URL.

An event is written in the transaction of what it reports. A delivery is claimed by one statement
(a lease, so a worker that dies mid-delivery does not hold it for ever), posted, then finished.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from adapters.db.models import AppEvent, AppEventDelivery
from domain.times import as_utc

PENDING = "pending"
SENDING = "sending"
DELIVERED = "delivered"
FAILED = "failed"  # a dead letter: `events replay` sends it again
STATES = (PENDING, SENDING, DELIVERED, FAILED)


def add_event(
    session: Session, event_type: str, body: str, now: datetime, urls: Sequence[str]
) -> tuple[str, list[int]]:
    """Store the event and a pending delivery per URL; returns the event id and the delivery ids."""
    event_id = f"msg_{secrets.token_hex(16)}"
    session.add(AppEvent(id=event_id, type=event_type, body=body, created_at=now))
    deliveries = [
        AppEventDelivery(
            event_id=event_id, url=url, status=PENDING, attempts=0, next_attempt_at=now, window_started_at=now
        )
        for url in urls
    ]
    session.add_all(deliveries)
    session.flush()
    return event_id, [delivery.id for delivery in deliveries]


@dataclass(frozen=True)
class Claim:
    event_id: str
    url: str
    body: str
    attempts: int  # this one included
    window_started_at: datetime


def claim(session: Session, delivery_id: int, now: datetime, lease_until: datetime) -> Claim | None:
    """Take a due delivery (or one whose lease ran out) for one attempt; None when it is not ours to send."""
    due = and_(AppEventDelivery.status == PENDING, AppEventDelivery.next_attempt_at <= now)
    abandoned = and_(AppEventDelivery.status == SENDING, AppEventDelivery.lease_until < now)
    row = session.execute(
        update(AppEventDelivery)
        .where(AppEventDelivery.id == delivery_id, or_(due, abandoned))
        .values(status=SENDING, lease_until=lease_until, attempts=AppEventDelivery.attempts + 1)
        .returning(
            AppEventDelivery.event_id,
            AppEventDelivery.url,
            AppEventDelivery.attempts,
            AppEventDelivery.window_started_at,
        )
    ).first()
    if row is None:
        return None
    body = session.scalar(select(AppEvent.body).where(AppEvent.id == row.event_id))
    return Claim(row.event_id, row.url, body or "", row.attempts, as_utc(row.window_started_at))


def pending_until(session: Session, delivery_id: int) -> datetime | None:
    """When a pending delivery is next due; None when it is not pending."""
    due = session.scalar(
        select(AppEventDelivery.next_attempt_at).where(
            AppEventDelivery.id == delivery_id, AppEventDelivery.status == PENDING
        )
    )
    return as_utc(due) if due is not None else None


def delivered(session: Session, delivery_id: int, now: datetime) -> None:
    session.execute(
        update(AppEventDelivery)
        .where(AppEventDelivery.id == delivery_id, AppEventDelivery.status == SENDING)
        .values(status=DELIVERED, delivered_at=now, lease_until=None, last_error=None)
    )


def failed(session: Session, delivery_id: int, error: str, next_attempt_at: datetime | None) -> None:
    """A failed attempt: pending again until `next_attempt_at`, or a dead letter when None."""
    values: dict[str, Any] = {"lease_until": None, "last_error": error[:200]}
    if next_attempt_at is None:
        values["status"] = FAILED
    else:
        values.update(status=PENDING, next_attempt_at=next_attempt_at)
    session.execute(
        update(AppEventDelivery)
        .where(AppEventDelivery.id == delivery_id, AppEventDelivery.status == SENDING)
        .values(**values)
    )


def stranded(session: Session, due_before: datetime, now: datetime, limit: int) -> Sequence[int]:
    """Deliveries whose message was lost: pending and due before `due_before`, or leased by a worker
    that died (lease over by `now`). Oldest first."""
    query = (
        select(AppEventDelivery.id)
        .where(
            or_(
                and_(AppEventDelivery.status == PENDING, AppEventDelivery.next_attempt_at <= due_before),
                and_(AppEventDelivery.status == SENDING, AppEventDelivery.lease_until < now),
            )
        )
        .order_by(AppEventDelivery.next_attempt_at)
        .limit(limit)
    )
    return session.scalars(query).all()


def replay(session: Session, now: datetime, event_id: str | None) -> list[int]:
    """Make dead letters pending again with a fresh retry window: one event's deliveries (any that
    are not being sent right now), or every dead letter when `event_id` is None."""
    condition = (
        AppEventDelivery.status == FAILED
        if event_id is None
        else and_(AppEventDelivery.event_id == event_id, AppEventDelivery.status != SENDING)
    )
    return list(
        session.scalars(
            update(AppEventDelivery)
            .where(condition)
            .values(status=PENDING, next_attempt_at=now, window_started_at=now, lease_until=None)
            .returning(AppEventDelivery.id)
        ).all()
    )


@dataclass(frozen=True)
class Listed:
    event_id: str
    type: str
    created_at: datetime
    url: str
    status: str
    attempts: int
    last_error: str | None


def listing(session: Session, failed_only: bool, limit: int) -> list[Listed]:
    """Deliveries with their event, newest event first."""
    query = select(
        AppEvent.id,
        AppEvent.type,
        AppEvent.created_at,
        AppEventDelivery.url,
        AppEventDelivery.status,
        AppEventDelivery.attempts,
        AppEventDelivery.last_error,
    ).join(AppEventDelivery, AppEventDelivery.event_id == AppEvent.id)
    if failed_only:
        query = query.where(AppEventDelivery.status == FAILED)
    query = query.order_by(AppEvent.created_at.desc(), AppEventDelivery.id).limit(limit)
    return [Listed(r[0], r[1], as_utc(r[2]), r[3], r[4], r[5], r[6]) for r in session.execute(query)]


def known(session: Session, event_id: str) -> bool:
    return session.get(AppEvent, event_id) is not None


def totals(session: Session) -> tuple[dict[str, int], datetime | None]:
    """Deliveries by state, and when the oldest event not yet delivered everywhere was created."""
    counts = {state: 0 for state in STATES}
    counts.update(
        dict(session.execute(select(AppEventDelivery.status, func.count()).group_by(AppEventDelivery.status)).all())
    )
    oldest = session.scalar(
        select(func.min(AppEvent.created_at))
        .join(AppEventDelivery, AppEventDelivery.event_id == AppEvent.id)
        .where(AppEventDelivery.status.in_((PENDING, SENDING, FAILED)))
    )
    return counts, (as_utc(oldest) if oldest is not None else None)
