"""Single-use reset tokens and the mail outbox, written in the decision's transaction.

The rule of every mail: claimed (`pending → sending`) by one statement, sent, then marked `sent`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from adapters.db.models import OutgoingMail, ResetToken
from adapters.db.users import Recipient
from domain.notices import ALERT_KINDS, RESET, Notice
from domain.times import as_utc, format_time
from domain.tokens import token_hash

PENDING = "pending"
SENDING = "sending"
SENT = "sent"


def issue_reset(
    session: Session, attempt_id: str, user: Recipient, now: datetime, ttl: int, reset_url: Callable[[str], str]
) -> str:
    """Store a new token's hash and queue the email that carries the token itself; returns the mail id."""
    token = secrets.token_urlsafe(32)  # 256 bits
    mail_id = f"mail_{secrets.token_hex(12)}"
    session.add(
        ResetToken(
            token_hash=token_hash(token),
            user_id=user.id,
            attempt_id=attempt_id,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
            used_at=None,
        )
    )
    session.add(
        OutgoingMail(
            id=mail_id,
            attempt_id=attempt_id,
            user_id=user.id,
            to_address=user.email,  # the local directory's address, never the one FaceSign reported
            reset_url=reset_url(token),
            status=PENDING,
            created_at=now,
        )
    )
    session.flush()
    return mail_id


def queue_alert(session: Session, attempt_id: str, user: Recipient, now: datetime, notice: Notice) -> str:
    """Queue an alert to the user about a refused attempt on their account; returns the mail id.
    It carries counts and the lock's end only: never a reason or anything biometric."""
    mail_id = f"mail_{secrets.token_hex(12)}"
    details: dict[str, Any] = {"refused": notice.refused}
    if notice.locked_until is not None:
        details["lockedUntil"] = format_time(notice.locked_until)
    session.add(
        OutgoingMail(
            id=mail_id,
            attempt_id=attempt_id,
            user_id=user.id,
            to_address=user.email,
            reset_url=None,
            status=PENDING,
            created_at=now,
            kind=notice.kind,
            details=details,
        )
    )
    session.flush()
    return mail_id


def last_alert_at(session: Session, user_id: str) -> datetime | None:
    """When the user's latest alert was queued, or None if they never had one."""
    at = session.scalar(
        select(func.max(OutgoingMail.created_at)).where(
            OutgoingMail.user_id == user_id, OutgoingMail.kind.in_(ALERT_KINDS)
        )
    )
    return as_utc(at) if at is not None else None


@dataclass(frozen=True)
class Claimed:
    to_address: str
    reset_url: str | None
    kind: str = RESET
    details: dict[str, Any] | None = None


def claim(session: Session, mail_id: str, now: datetime) -> Claimed | None:
    """Move a pending mail to `sending`; only one caller can win, and a claimed mail is never claimed again."""
    row = session.execute(
        update(OutgoingMail)
        .where(OutgoingMail.id == mail_id, OutgoingMail.status == PENDING)
        .values(status=SENDING, sending_at=now)
        .returning(OutgoingMail.to_address, OutgoingMail.reset_url, OutgoingMail.kind, OutgoingMail.details)
    ).first()
    # Only pending mails are claimed, and only sent ones lose their address.
    return Claimed(row.to_address or "", row.reset_url, row.kind, row.details) if row else None


def mark_sent(session: Session, mail_id: str, now: datetime) -> None:
    """Sent: the link (the only copy of the raw token) and the address are wiped; the mail's row keeps
    who it was for (`user_id`) and when, which is all the log needs."""
    session.execute(
        update(OutgoingMail)
        .where(OutgoingMail.id == mail_id)
        .values(status=SENT, sent_at=now, reset_url=None, to_address=None)
    )


def release(session: Session, mail_id: str) -> None:
    """The backend refused before taking the mail: back to pending, for a retry."""
    session.execute(
        update(OutgoingMail)
        .where(OutgoingMail.id == mail_id, OutgoingMail.status == SENDING)
        .values(status=PENDING, sending_at=None)
    )


def release_abandoned(session: Session, claimed_before: datetime) -> int:
    """Give back mails whose sender claimed them before `claimed_before` and never finished."""
    released = session.scalars(
        update(OutgoingMail)
        .where(OutgoingMail.status == SENDING, OutgoingMail.sending_at <= claimed_before)
        .values(status=PENDING, sending_at=None)
        .returning(OutgoingMail.id)
    ).all()
    return len(released)


def pending_mail(session: Session, created_before: datetime, limit: int) -> Sequence[str]:
    """Ids of mails still pending that were queued before `created_before`, oldest first."""
    query = (
        select(OutgoingMail.id)
        .where(OutgoingMail.status == PENDING, OutgoingMail.created_at <= created_before)
        .order_by(OutgoingMail.created_at)
        .limit(limit)
    )
    return session.scalars(query).all()
