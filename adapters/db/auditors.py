"""Auditor tokens (only their SHA-256 is stored) and the log of who read the audit log."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.db.models import AuditAccess, AuditorToken
from domain.tokens import token_hash

TOKEN_PREFIX = "fsa_"  # noqa: S105  (a marker, not a secret)
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")


class AuditorError(Exception):
    """A mistake an operator can make: its message is meant for them."""


def create_token(session: Session, name: str, now: datetime) -> str:
    """Store a new auditor's token hash and return the token, which is never stored or shown again."""
    if not name or len(name) > 64 or not set(name) <= NAME_CHARS:
        raise AuditorError(f"auditor name must be 1-64 characters of letters, digits and ._@-: {name!r}")
    existing = session.get(AuditorToken, name)
    if existing is not None:
        state = "revoked" if existing.revoked_at else "active"
        raise AuditorError(f"auditor {name!r} already exists ({state}); choose another name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(AuditorToken(name=name, token_hash=token_hash(token), created_at=now, revoked_at=None))
    session.flush()
    return token


def list_tokens(session: Session) -> Sequence[AuditorToken]:
    return session.scalars(select(AuditorToken).order_by(AuditorToken.created_at, AuditorToken.name)).all()


def revoke_token(session: Session, name: str, now: datetime) -> None:
    row = session.get(AuditorToken, name)
    if row is None:
        raise AuditorError(f"no auditor named {name!r}")
    if row.revoked_at is None:
        row.revoked_at = now


def authenticate(session: Session, token: str) -> str | None:
    """The auditor's name for a valid, unrevoked token; None otherwise.

    Looking up by hash means the secret itself is never compared, so there is nothing to time.
    """
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.scalar(select(AuditorToken).where(AuditorToken.token_hash == token_hash(token)))
    if row is None or row.revoked_at is not None:
        return None
    return row.name


def record_access(
    session: Session,
    auditor: str,
    action: str,
    filters: Mapping[str, Any],
    now: datetime,
    decision_id: int | None = None,
) -> None:
    """Note one read of the audit log; only filter values that were given are kept. `decision_id`: the one
    decision the read opened, so that its page can say who looked at it."""
    given = {key: value for key, value in filters.items() if value not in (None, "")}
    session.add(AuditAccess(at=now, auditor=auditor[:128], action=action, filters=given, decision_id=decision_id))


def accesses_of(session: Session, decision_id: int, limit: int = 100) -> Sequence[AuditAccess]:
    """Who opened one decision, newest first."""
    query = select(AuditAccess).where(AuditAccess.decision_id == decision_id).order_by(AuditAccess.id.desc())
    return session.scalars(query.limit(limit)).all()


def access_log(session: Session, limit: int = 100) -> Sequence[AuditAccess]:
    return session.scalars(select(AuditAccess).order_by(AuditAccess.id.desc()).limit(limit)).all()
