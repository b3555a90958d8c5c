"""The key of the audit log's keyed digests (of emails and client addresses)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.db.models import ServiceSetting

PSEUDONYM_SETTING = "audit_pseudonym_key"


class MissingPseudonymKey(RuntimeError):
    """Outside the sandbox the key must come from AUDIT_PSEUDONYM_KEY, never from the database."""


def pseudonym_key(session: Session, configured: str | None, *, allow_stored: bool = False) -> bytes:
    """AUDIT_PSEUDONYM_KEY; the random key stored in the database only when `allow_stored` (the sandbox).

    A key kept in the database it protects is no key at all: a dump of that database would map every
    digest back to its address through the users table.
    """
    if configured:
        return configured.encode("utf-8")
    if not allow_stored:
        raise MissingPseudonymKey("AUDIT_PSEUDONYM_KEY: required outside the sandbox")
    stored = session.execute(select(ServiceSetting.value).where(ServiceSetting.key == PSEUDONYM_SETTING)).scalar()
    if stored is None:
        raise RuntimeError("the database has no audit pseudonym key: run `facesign-recovery db upgrade`")
    return stored.encode("utf-8")
