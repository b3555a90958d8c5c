"""Single-use reset tokens and the mail outbox written in the decision's transaction."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapters.models import OutgoingMail, ResetToken, User

PENDING = "pending"
SENDING = "sending"
SENT = "sent"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_reset(
    session: Session, attempt_id: str, user: User, now: datetime, ttl: int, reset_url: Callable[[str], str]
) -> OutgoingMail:
    """Store the token's hash and queue the email that carries the token itself."""
    token = secrets.token_urlsafe(32)  # 256 bits
    session.add(
        ResetToken(
            token_hash=token_hash(token),
            user_id=user.id,
            attempt_id=attempt_id,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
    )
    mail = OutgoingMail(
        id=f"mail_{secrets.token_hex(12)}",
        attempt_id=attempt_id,
        user_id=user.id,
        to_address=user.email,  # the local directory's address, never the one FaceSign reported
        reset_url=reset_url(token),
        status=PENDING,
        created_at=now,
    )
    session.add(mail)
    session.flush()
    return mail


def claim(session: Session, mail_id: str, now: datetime) -> OutgoingMail | None:
    """Move a pending mail to `sending`; only one caller can win, and a claimed mail is never claimed again."""
    result = session.execute(
        update(OutgoingMail)
        .where(OutgoingMail.id == mail_id, OutgoingMail.status == PENDING)
        .values(status=SENDING, sending_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(OutgoingMail, mail_id, populate_existing=True)


def mark_sent(session: Session, mail_id: str, now: datetime) -> None:
    session.execute(
        update(OutgoingMail).where(OutgoingMail.id == mail_id).values(status=SENT, sent_at=now, reset_url=None)
    )


def release(session: Session, mail_id: str) -> None:
    session.execute(
        update(OutgoingMail)
        .where(OutgoingMail.id == mail_id, OutgoingMail.status == SENDING)
        .values(status=PENDING, sending_at=None)
    )


def release_abandoned(session: Session, claimed_before: datetime) -> int:
    """Give back mails whose sender claimed them before `claimed_before` and never finished."""
    result = session.execute(
        update(OutgoingMail)
        .where(OutgoingMail.status == SENDING, OutgoingMail.sending_at <= claimed_before)
        .values(status=PENDING, sending_at=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def pending_for_attempt(session: Session, attempt_id: str) -> str | None:
    return session.scalar(
        select(OutgoingMail.id).where(OutgoingMail.attempt_id == attempt_id, OutgoingMail.status == PENDING)
    )
