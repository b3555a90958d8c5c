"""Single-use reset tokens and the mail outbox written in the decision's transaction."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, insert, update
from sqlalchemy.orm import Session

from adapters.models import OutgoingMail, ResetToken, User
from adapters.users import Recipient

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
TOKEN_BYTES = 32  # 256 bits
MAIL_ID_BYTES = 12

# Built once: constructing a statement costs more CPU than its cached compilation.
_INSERT_TOKEN = insert(ResetToken.__table__)
_INSERT_MAIL = insert(OutgoingMail.__table__)
_CLAIM = (
    update(OutgoingMail.__table__)
    .where(OutgoingMail.id == bindparam("mail_id"), OutgoingMail.status == PENDING)
    .values(status=SENDING, sending_at=bindparam("now"))
    .returning(OutgoingMail.to_address, OutgoingMail.reset_url)
)
_MARK_SENT = (
    update(OutgoingMail.__table__)
    .where(OutgoingMail.id == bindparam("mail_id"))
    .values(status=SENT, sent_at=bindparam("now"), reset_url=None)
)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Reset:
    """The rows an approval adds: the token's hash and the mail that carries the token itself."""

    mail_id: str
    token_row: dict[str, Any]
    mail_row: dict[str, Any]


def new_reset(
    attempt_id: str, user: User | Recipient, now: datetime, ttl: int, reset_url: Callable[[str], str]
) -> Reset:
    # Both from one getrandom() call: each releases the GIL, and in a busy worker getting it back
    # means waiting behind the other threads' turns.
    raw = secrets.token_bytes(TOKEN_BYTES + MAIL_ID_BYTES)
    token = base64.urlsafe_b64encode(raw[:TOKEN_BYTES]).rstrip(b"=").decode("ascii")  # as secrets.token_urlsafe
    mail_id = f"mail_{raw[TOKEN_BYTES:].hex()}"
    return Reset(
        mail_id=mail_id,
        token_row={
            "token_hash": token_hash(token),
            "user_id": user.id,
            "attempt_id": attempt_id,
            "created_at": now,
            "expires_at": now + timedelta(seconds=ttl),
            "used_at": None,
        },
        mail_row={
            "id": mail_id,
            "attempt_id": attempt_id,
            "user_id": user.id,
            "to_address": user.email,  # the local directory's address, never the one FaceSign reported
            "reset_url": reset_url(token),
            "status": PENDING,
            "created_at": now,
            "sending_at": None,
            "sent_at": None,
        },
    )


def issue_reset(
    session: Session | Connection,
    attempt_id: str,
    user: User | Recipient,
    now: datetime,
    ttl: int,
    reset_url: Callable[[str], str],
) -> OutgoingMail:
    """Store the token's hash and queue the email that carries the token itself (plain INSERTs: the
    returned mail is not attached to the session). Deciding workers go through adapters.outcome."""
    reset = new_reset(attempt_id, user, now, ttl, reset_url)
    insert_reset(session, reset)
    return OutgoingMail(**reset.mail_row)


def insert_reset(db: Session | Connection, reset: Reset) -> None:
    db.execute(_INSERT_TOKEN, reset.token_row)
    db.execute(_INSERT_MAIL, reset.mail_row)


@dataclass(frozen=True)
class Claimed:
    to_address: str
    reset_url: str | None


def claim(db: Session | Connection, mail_id: str, now: datetime) -> Claimed | None:
    """Move a pending mail to `sending`; only one caller can win, and a claimed mail is never claimed again.

    One statement (UPDATE … RETURNING), atomic by itself: it may run outside a transaction.
    """
    row = db.execute(_CLAIM, {"mail_id": mail_id, "now": now}).first()
    return Claimed(row.to_address, row.reset_url) if row else None


def mark_sent(db: Session | Connection, mail_id: str, now: datetime) -> None:
    db.execute(_MARK_SENT, {"mail_id": mail_id, "now": now})


def release(db: Session | Connection, mail_id: str) -> None:
    db.execute(
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
