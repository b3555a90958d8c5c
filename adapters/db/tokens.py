"""Redeeming a single-use reset token: exactly once, while unexpired."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapters.db.models import RecoveryAttempt, ResetToken
from domain.tokens import token_hash

# Tokens are 43 URL-safe characters; anything far longer is not one of ours and is not hashed.
MAX_TOKEN_LENGTH = 256


def redeem(session: Session, token: str, now: datetime, *, client_digest: str | None = None) -> str | None:
    """Mark the token used and return its user id, or None for an unknown, used or expired token.

    One conditional UPDATE decides it: of any number of concurrent redemptions exactly one
    matches `used_at IS NULL` (PostgreSQL re-checks the condition after waiting on the row lock;
    SQLite has a single writer), so there is no read-then-write window.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    result = session.execute(
        update(ResetToken)
        .where(
            ResetToken.token_hash == token_hash(token),
            ResetToken.used_at.is_(None),
            ResetToken.expires_at > now,
        )
        .values(used_at=now, redeemed_client_digest=client_digest)
        .returning(ResetToken.user_id)
    )
    return result.scalar_one_or_none()


def attempt_of(session: Session, token: str) -> tuple[str, str | None]:
    """The attempt (and its FaceSign session) a known token was issued for."""
    row = session.execute(
        select(ResetToken.attempt_id, RecoveryAttempt.session_id)
        .join(RecoveryAttempt, RecoveryAttempt.id == ResetToken.attempt_id)
        .where(ResetToken.token_hash == token_hash(token))
    ).one()
    return row.attempt_id, row.session_id
