"""Tables. The decisions table is the audit log: rows are only ever inserted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True)}


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored normalised
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]


class RecoveryAttempt(Base):
    __tablename__ = "recovery_attempts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    client_reference_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending, approved, denied, expired, failed
    flow: Mapped[Any] = mapped_column(JSON)
    session_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(index=True)
    decided_at: Mapped[datetime | None]
    # The reconciler's schedule: when it asks FaceSign next (NULL: at creation), and how often it has asked.
    next_check_at: Mapped[datetime | None]
    checks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The latest signed status-event time held for a session whose event could not be acted on at once.
    last_event_at: Mapped[datetime | None]
    client_digest: Mapped[str | None] = mapped_column(String(64))  # keyed digest of who started it

    __table_args__ = (
        Index("ix_recovery_attempts_status_next_check", "status", "next_check_at"),
        # The dashboard's time-to-decision histogram over a window, from the index alone on PostgreSQL.
        Index("ix_recovery_attempts_decided_created", "decided_at", "created_at"),
    )


class Decision(Base):
    __tablename__ = "decisions"
    # Ids are assigned under the chain lock as head + 1, so a forked chain cannot be written.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    decided_at: Mapped[datetime] = mapped_column(index=True)
    attempt_id: Mapped[str] = mapped_column(ForeignKey("recovery_attempts.id"), unique=True)
    session_id: Mapped[str] = mapped_column(String(128), unique=True)
    client_reference_id: Mapped[str | None] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64))
    session_status: Mapped[str | None] = mapped_column(String(32))
    recognition: Mapped[str | None] = mapped_column(String(32))
    liveness: Mapped[str | None] = mapped_column(String(32))
    conversation: Mapped[str | None] = mapped_column(String(64))
    matched_user_id: Mapped[str | None] = mapped_column(String(64))
    email_digest: Mapped[str | None] = mapped_column(String(64))
    rules_version: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str | None] = mapped_column(String(128))
    message_id: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (
        Index("ix_decisions_outcome_reason", "outcome", "reason"),
        # The recovery lock counts one user's recent refusals inside every decision's transaction.
        Index("ix_decisions_user_decided", "matched_user_id", "decided_at"),
        # The dashboard's aggregates over a time window, answered from the indexes alone on PostgreSQL.
        Index("ix_decisions_day_outcome_reason", "decided_at", "outcome", "reason"),
        Index("ix_decisions_day_matched_user", "decided_at", "matched_user_id", "outcome"),
        Index("ix_decisions_day_attempt", "decided_at", "attempt_id"),
    )


class ResetToken(Base):
    __tablename__ = "reset_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 hex; the token is never stored
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    attempt_id: Mapped[str] = mapped_column(ForeignKey("recovery_attempts.id"), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    redeemed_client_digest: Mapped[str | None] = mapped_column(String(64))  # keyed digest of who redeemed it


class OutgoingMail(Base):
    """The outbox. `reset_url` holds the only copy of the raw token; it and the address are wiped once sent."""

    __tablename__ = "outgoing_mail"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempt_id: Mapped[str] = mapped_column(ForeignKey("recovery_attempts.id"), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    to_address: Mapped[str | None] = mapped_column(String(320))
    reset_url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending, sending, sent
    created_at: Mapped[datetime]
    sending_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    kind: Mapped[str] = mapped_column(String(16), default="reset", server_default="reset")  # domain.notices
    details: Mapped[Any | None] = mapped_column(JSON)  # an alert's counts and lock end, never a reason

    # The hourly cap on alerts reads a user's latest alert.
    __table_args__ = (Index("ix_outgoing_mail_user_created", "user_id", "created_at"),)


class ServiceSetting(Base):
    __tablename__ = "service_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class AuditorToken(Base):
    """Who may read the audit log. Only the token's SHA-256 is kept; the token is shown once."""

    __tablename__ = "auditor_tokens"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class AuditAccess(Base):
    """Every read of the audit log: who, when, what they asked for."""

    __tablename__ = "audit_access_log"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    auditor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    filters: Mapped[Any] = mapped_column(JSON)
    decision_id: Mapped[int | None] = mapped_column(BigInteger, index=True)  # the one decision a read opened


class RecoveryLockReset(Base):
    """An operator lifted a user's recovery lock: refusals before `at` no longer count."""

    __tablename__ = "recovery_lock_resets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime]
    by: Mapped[str] = mapped_column(String(128))


class AppEvent(Base):
    """An event for the customer's application; `body` is the exact JSON sent on every delivery."""

    __tablename__ = "app_events"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the `webhook-id`
    type: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(index=True)


class AppEventDelivery(Base):
    """One event to one URL: pending, sending (leased to a worker), delivered, or failed (a dead letter)."""

    __tablename__ = "app_event_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("app_events.id"))
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    window_started_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        UniqueConstraint("event_id", "url", name="uq_app_event_deliveries_event_url"),
        Index("ix_app_event_deliveries_status_next", "status", "next_attempt_at"),
    )


class AuditCheckpoint(Base):
    """A verification of the chain: how far it got, from where, by whom, and what it found.

    An administrator could forge a row here, so each good checkpoint is also written as an anchor
    outside the database (AUDIT_ANCHOR_SINK), and a full verification never starts from one.
    """

    __tablename__ = "audit_checkpoints"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    head_id: Mapped[int] = mapped_column(BigInteger)  # the last row verified (0: the log was empty)
    head_hash: Mapped[str] = mapped_column(String(64))
    started_after: Mapped[int] = mapped_column(BigInteger)  # 0 for a full verification from the first row
    rows: Mapped[int] = mapped_column(BigInteger)  # rows this verification read
    kind: Mapped[str] = mapped_column(String(16))  # full, incremental
    ok: Mapped[bool] = mapped_column(Boolean)
    bad_id: Mapped[int | None] = mapped_column(BigInteger)
    detail: Mapped[str] = mapped_column(Text)
    verified_at: Mapped[datetime]
    verified_by: Mapped[str] = mapped_column(String(128))
    seconds: Mapped[float] = mapped_column(Float)
