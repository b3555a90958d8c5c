"""The key of the audit log's keyed digests (of emails and client addresses)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.db.models import ServiceSetting

PSEUDONYM_SETTING = "audit_pseudonym_key"


def pseudonym_key(session: Session, configured: str | None) -> bytes:
    if configured:
        return configured.encode("utf-8")
    stored = session.execute(select(ServiceSetting.value).where(ServiceSetting.key == PSEUDONYM_SETTING)).scalar()
    if stored is None:
        raise RuntimeError("the database has no audit pseudonym key: run `facesign-recovery db upgrade`")
    return stored.encode("utf-8")
