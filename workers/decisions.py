"""Turning one finished FaceSign session into one decision, exactly once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row
from sqlalchemy.exc import IntegrityError

from adapters import audit_log, outbox
from adapters.attempts import PENDING, for_deciding, to_domain
from adapters.db import autocommit
from adapters.facesign import FaceSignNotFound
from adapters.outcome import write_decision
from adapters.users import Recipient, find_recipient, recipients
from domain.report import SessionReport, parse_session
from domain.rules import Attempt, Decision, decide, expire, reported_emails
from workers.context import Deps

log = logging.getLogger(__name__)

STATUS_BY_REASON = {"attempt_expired": "expired"}
MAX_SESSION_ID = 128  # the column's width
RecipientsSeen = dict[str, Recipient]  # user id -> address, filled by the rules' user lookup
KnownUsers = dict[str, Recipient | None]  # reported address -> enrolled user, or None when nobody is


@dataclass(frozen=True)
class Result:
    status: str  # unknown_session, already_decided, not_finished, vendor_unknown, approved, denied
    mail_id: str | None = None


def utcnow() -> datetime:
    return datetime.now(UTC)


def process_session_event(
    deps: Deps, session_id: str, event_id: str | None = None, message_id: str | None = None
) -> Result:
    """Fetch the session, decide, and record the decision; safe to run any number of times."""
    if len(session_id) > MAX_SESSION_ID or not session_id.isprintable():
        # Signed by FaceSign yet no id of ours could look like this (a NUL byte would even make
        # PostgreSQL fail the query, and the message would be retried into the dead-letter queue).
        log.warning("session id of %d characters is not one we issue; dropped", len(session_id))
        return Result("unknown_session")
    # Read before the FaceSign call, so that a decided attempt is not fetched again, and handed to
    # record(), whose writes check that it is still pending. One read, outside a transaction.
    with autocommit(deps.engine) as connection:
        attempt = for_deciding(connection, session_id)
    if attempt is None:
        log.info("session %s: no recovery attempt of ours; dropped", session_id)
        return Result("unknown_session")
    if attempt.status != PENDING:
        # A redelivery after a crash between commit and the mail enqueue heals the mail here.
        return Result("already_decided", attempt.pending_mail_id)
    try:
        report = parse_session(deps.facesign.get_session(session_id))
    except FaceSignNotFound:
        log.warning("session %s: FaceSign does not know it; left for the reconciler", session_id)
        return Result("vendor_unknown")
    return record(deps, session_id, report, event_id=event_id, message_id=message_id, attempt=attempt)


def record(
    deps: Deps,
    session_id: str,
    report: SessionReport | None,
    *,
    event_id: str | None,
    message_id: str | None,
    now: datetime | None = None,
    attempt: Row[Any] | None = None,
) -> Result:
    """Audit row, attempt status and, when approved, reset token and outbox mail: all or nothing,
    and nothing once the attempt is decided (adapters.outcome).

    With `report=None` (the vendor could not say) only the expiry rule can decide. `attempt`: what
    `for_deciding()` read, when the caller has it. On PostgreSQL, three statements at most, each
    atomic on its own (the attempt, the reported users, the writes); on SQLite, one transaction.
    """
    now = now or utcnow()
    try:
        with autocommit(deps.engine) as db:
            attempt = attempt or for_deciding(db, session_id)
            if attempt is None or attempt.status != PENDING:
                return Result("already_decided")
            found: RecipientsSeen = {}
            known: KnownUsers = recipients(db, reported_emails(report)) if report else {}
            decision = judge(deps, db, to_domain(attempt), report, now, known, found)
            if decision is None:
                return Result("not_finished")
            reset = new_reset(deps, attempt.id, decision, found, now)
            audit = audit_log.new_row(
                decision,
                attempt_id=attempt.id,
                session_id=session_id,
                client_reference_id=report.client_reference_id if report else None,
                decided_at=now,
                event_id=event_id,
                message_id=message_id,
                digest_key=deps.digest_key(db),  # read once per process
            )
            status = STATUS_BY_REASON.get(decision.reason, decision.outcome)
            if not write_decision(db, attempt.id, status, now, reset, audit):
                return Result("already_decided")
    except IntegrityError:
        # Another worker decided this session between our check and our insert: its row stands.
        log.info("session %s: decided concurrently by another worker", session_id)
        return Result("already_decided")
    log.info("session %s: %s (%s)", session_id, decision.outcome, decision.reason)
    return Result(decision.outcome, reset.mail_id if reset else None)


def judge(
    deps: Deps,
    db: Connection,
    attempt: Attempt,
    report: SessionReport | None,
    now: datetime,
    known: KnownUsers,
    found: RecipientsSeen,
) -> Decision | None:
    """The rules' verdict. Their user lookup is answered from `known` (read beforehand, in one
    statement) and a user it finds is kept in `found`, so approval reads no row again."""
    if report is None:
        return expire(attempt, now, deps.policy)

    def lookup(email: str) -> str | None:
        recipient = known[email] if email in known else find_recipient(db, email)
        if recipient is None:
            return None
        found[recipient.id] = recipient
        return recipient.id

    return decide(report, attempt, lookup, now, deps.policy)


def new_reset(
    deps: Deps, attempt_id: str, decision: Decision, found: RecipientsSeen, now: datetime
) -> outbox.Reset | None:
    """For an approval, the reset token and its email (to the local directory's address)."""
    if not decision.approved:
        return None
    assert decision.matched_user_id is not None  # decide() only approves a user it found  # noqa: S101
    settings = deps.settings
    user = found[decision.matched_user_id]
    return outbox.new_reset(attempt_id, user, now, settings.reset_token_ttl, settings.reset_url)
