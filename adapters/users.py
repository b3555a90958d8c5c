"""The local user directory: who may receive a reset link."""

from __future__ import annotations

import csv
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from secrets import token_hex

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from adapters.models import User
from domain.rules import normalise_email


@dataclass(frozen=True)
class Recipient:
    """What a reset email needs of a user: fetched with the lookup, so approval reads no second row."""

    id: str
    email: str


class UserError(ValueError):
    """Bad input to the user directory; the message fits on one line."""


def add_user(session: Session, email: str, user_id: str | None = None, name: str | None = None) -> User:
    normal = normalise_email(email)
    if normal is None or "@" not in normal:
        raise UserError(f"not an email address: {email!r}")
    if session.scalar(select(User.id).where(User.email == normal)) is not None:
        raise UserError(f"a user with email {normal} already exists")
    user_id = (user_id or "").strip() or f"user_{token_hex(8)}"
    if session.get(User, user_id) is not None:
        raise UserError(f"a user with id {user_id} already exists")
    user = User(id=user_id, email=normal, name=(name or "").strip() or None, created_at=datetime.now(UTC))
    session.add(user)
    session.flush()
    return user


def import_users(session: Session, path: Path) -> int:
    """Add every row of a CSV with header `email,id,name`; all or nothing."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "email" not in reader.fieldnames:
            raise UserError(f"{path}: the CSV header must name the column email (email,id,name)")
        count = 0
        for line, row in enumerate(reader, start=2):
            try:
                add_user(session, row.get("email") or "", row.get("id"), row.get("name"))
            except UserError as exc:
                raise UserError(f"{path}:{line}: {exc}") from None
            count += 1
    return count


def find_user_id(session: Session, normal_email: str) -> str | None:
    return session.scalar(select(User.id).where(User.email == normal_email))


_RECIPIENT = select(User.id, User.email).where(User.email == bindparam("email"))
# A fixed number of parameters (unused ones NULL, which matches nothing) keeps the statement's
# compiled form cached; an expanding IN would be rendered again on every execution.
PREFETCHED = 2
_NAMES = tuple(f"email_{n}" for n in range(PREFETCHED))
_RECIPIENTS = select(User.id, User.email).where(User.email.in_([bindparam(n, type_=User.email.type) for n in _NAMES]))


def find_recipient(db: Session | Connection, normal_email: str) -> Recipient | None:
    row = db.execute(_RECIPIENT, {"email": normal_email}).first()
    return Recipient(row.id, row.email) if row else None


def recipients(db: Session | Connection, normal_emails: Collection[str]) -> dict[str, Recipient | None]:
    """For up to PREFETCHED of `normal_emails`, in one statement: the enrolled user, or None."""
    asked = sorted(normal_emails)[:PREFETCHED]
    if not asked:
        return {}
    params = dict.fromkeys(_NAMES) | dict(zip(_NAMES, asked, strict=False))
    known: dict[str, Recipient | None] = dict.fromkeys(asked)
    known |= {row.email: Recipient(row.id, row.email) for row in db.execute(_RECIPIENTS, params)}
    return known


def all_users(session: Session) -> Iterable[User]:
    return session.scalars(select(User).order_by(User.email))
