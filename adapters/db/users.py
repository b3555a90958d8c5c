"""The local user directory: who may receive a reset link."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from secrets import token_hex

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.db.models import User
from domain.rules import normalise_email


@dataclass(frozen=True)
class Recipient:
    """A local user as mail needs them: their id and the directory's address."""

    id: str
    email: str


class UserError(ValueError):
    """Bad input to the user directory; the message fits on one line."""


def add_user(session: Session, email: str, user_id: str | None = None, name: str | None = None) -> Recipient:
    normal = normalise_email(email)
    if normal is None or "@" not in normal:
        raise UserError(f"not an email address: {email!r}")
    if find_user(session, normal) is not None:
        raise UserError(f"a user with email {normal} already exists")
    user_id = (user_id or "").strip() or f"user_{token_hex(8)}"
    if session.get(User, user_id) is not None:
        raise UserError(f"a user with id {user_id} already exists")
    session.add(User(id=user_id, email=normal, name=(name or "").strip() or None, created_at=datetime.now(UTC)))
    session.flush()
    return Recipient(user_id, normal)


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


def find_user(session: Session, normal_email: str) -> Recipient | None:
    row = session.execute(select(User.id, User.email).where(User.email == normal_email)).first()
    return Recipient(row.id, row.email) if row else None


def directory(session: Session) -> Sequence[tuple[str, str | None]]:
    """Every user's email and display name, by email."""
    return [(row.email, row.name) for row in session.execute(select(User.email, User.name).order_by(User.email))]


def get_user(session: Session, user_id: str) -> Recipient | None:
    row = session.get(User, user_id)
    return Recipient(row.id, row.email) if row else None
