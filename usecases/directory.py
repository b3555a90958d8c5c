"""The local user directory, for the command line and the sandbox's enrolment."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from adapters.db import users
from adapters.db.engine import Database
from adapters.db.users import Recipient
from domain.rules import normalise_email


def add_user(
    db: Database, email: str, user_id: str | None, name: str | None, *, exist_ok: bool = False
) -> tuple[Recipient, bool]:
    """The user and whether they were added (False: `exist_ok` and the email was known). Raises UserError."""
    with db.transaction() as session:
        existing = users.find_user(session, normalise_email(email) or "")
        if exist_ok and existing is not None:
            return existing, False
        return users.add_user(session, email, user_id, name), True


def import_users(db: Database, path: Path) -> int:
    with db.transaction() as session:
        return users.import_users(session, path)


def everyone(db: Database) -> Sequence[tuple[str, str | None]]:
    """(email, name) of every user."""
    with db.reading() as session:
        return users.directory(session)
