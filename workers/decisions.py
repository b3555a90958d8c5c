"""Turning one finished FaceSign session into one decision, exactly once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from adapters import audit_log, outbox
from adapters.attempts import PENDING, attempt_for_session, to_domain
from adapters.db import transaction
from adapters.facesign import FaceSignNotFound
from adapters.models import User
from adapters.users import find_user_id
from domain.report import SessionReport, parse_session
from domain.rules import Decision, decide, expire
from workers.context import Deps

log = logging.getLogger(__name__)

STATUS_BY_REASON = {"attempt_expired": "expired"}


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
    with deps.sessions() as session:
        attempt = attempt_for_session(session, session_id)
        if attempt is None:
            log.info("session %s: no recovery attempt of ours; dropped", session_id)
            return Result("unknown_session")
        if attempt.status != PENDING:
            # A redelivery after a crash between commit and the mail enqueue heals the mail here.
            return Result("already_decided", outbox.pending_for_attempt(session, attempt.id))
    try:
        report = parse_session(deps.facesign.get_session(session_id))
    except FaceSignNotFound:
        log.warning("session %s: FaceSign does not know it; left for the reconciler", session_id)
        return Result("vendor_unknown")
    return record(deps, session_id, report, event_id=event_id, message_id=message_id)


def record(
    deps: Deps,
    session_id: str,
    report: SessionReport | None,
    *,
    event_id: str | None,
    message_id: str | None,
    now: datetime | None = None,
) -> Result:
    """One transaction: audit row, attempt status and, when approved, reset token and outbox mail.

    With `report=None` (the vendor could not say) only the expiry rule can decide.
    """
    now = now or utcnow()
    try:
        with transaction(deps.sessions) as session:
            attempt = attempt_for_session(session, session_id, lock=True)
            if attempt is None or attempt.status != PENDING:
                return Result("already_decided")
            view = to_domain(attempt)
            decision: Decision | None
            if report is None:
                decision = expire(view, now, deps.policy)
            else:
                decision = decide(report, view, lambda email: find_user_id(session, email), now, deps.policy)
            if decision is None:
                return Result("not_finished")
            audit_log.append(
                session,
                decision,
                attempt_id=attempt.id,
                session_id=session_id,
                client_reference_id=report.client_reference_id if report else None,
                decided_at=now,
                event_id=event_id,
                message_id=message_id,
                digest_key=audit_log.pseudonym_key(session, deps.settings.audit_pseudonym_key),
            )
            attempt.status = STATUS_BY_REASON.get(decision.reason, decision.outcome)
            attempt.decided_at = now
            mail_id = None
            if decision.approved:
                user = session.get(User, decision.matched_user_id)
                assert user is not None  # decide() only approves a user it found  # noqa: S101
                mail_id = outbox.issue_reset(
                    session, attempt.id, user, now, deps.settings.reset_token_ttl, deps.settings.reset_url
                ).id
    except IntegrityError:
        # Another worker decided this session between our check and our insert: its row stands.
        log.info("session %s: decided concurrently by another worker", session_id)
        return Result("already_decided")
    log.info("session %s: %s (%s)", session_id, decision.outcome, decision.reason)
    return Result(decision.outcome, mail_id)
