"""Deciding one FaceSign session: fetch it, apply the rules, record the decision, exactly once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from adapters.db import attempts, audit_log, outbox, users
from adapters.db.engine import Session
from adapters.db.users import Recipient
from adapters.facesign.client import BudgetExhausted, FaceSignError, FaceSignNotFound
from adapters.logs import log_context
from domain.report import SessionReport, parse_session
from domain.rules import Decision, decide, expire
from domain.times import from_epoch_ms
from usecases import app_events
from usecases.deps import Deps
from usecases.protect import AccountGuard

log = logging.getLogger(__name__)

STATUS_BY_REASON = {"attempt_expired": "expired"}
MAX_SESSION_ID = 128  # the column's width


@dataclass(frozen=True)
class Result:
    status: str  # unknown_session, already_decided, not_finished, vendor_unknown, approved, denied
    mail_id: str | None = None
    deliveries: tuple[int, ...] = ()  # the application's events about this decision, to enqueue


def utcnow() -> datetime:
    return datetime.now(UTC)


def process_session_event(
    deps: Deps,
    session_id: str,
    event_id: str | None = None,
    message_id: str | None = None,
    event_at: datetime | None = None,
) -> Result:
    """Fetch the session, decide, and record the decision; safe to run any number of times.

    `event_at`: the signed time of the status event (the expiry rule judges the finish by it).
    """
    if len(session_id) > MAX_SESSION_ID or not session_id.isprintable():
        # Signed by FaceSign yet no id of ours could look like this (a NUL byte would even make
        # PostgreSQL fail the query, and the message would be retried into the dead-letter queue).
        log.warning("session id of %d characters is not one we issue; dropped", len(session_id))
        return Result("unknown_session")
    # Read before the FaceSign call, so that a decided attempt is not fetched again.
    with deps.db.reading() as session:
        found = attempts.for_deciding(session, session_id)
    if found is None or found[0].decided:
        deps.pending.take(session_id)  # nothing to fetch: the session's next webhook queues a message again
    if found is None:
        log.info("session %s: no recovery attempt of ours; dropped", session_id)
        return Result("unknown_session")
    attempt, pending_mail_id = found
    if attempt.decided:
        # A redelivery after a crash between commit and the mail enqueue heals the mail here.
        return Result("already_decided", pending_mail_id)
    with log_context(attempt_id=attempt.id):
        marked: list[datetime] = []  # what the webhooks this fetch stands for said, beyond its own

        def take_marker() -> None:
            # Once a budget token is in hand, right before the GET: webhooks that arrive while the fetch
            # waits for budget still coalesce into it, and any arriving after it queue another.
            latest = from_epoch_ms(deps.pending.take(session_id))
            if latest is not None:
                marked.append(latest)

        try:
            report = parse_session(deps.facesign.get_session(session_id, before_send=take_marker))
        except FaceSignNotFound:
            log.warning("session %s: FaceSign does not know it; left for the reconciler", session_id)
            return Result("vendor_unknown")
        except FaceSignError as exc:
            # These events may include the one that reported the finish: keep their time for whoever
            # decides later (this message's retry, or the reconciler if every retry fails). Waiting for
            # budget is no failure: the message comes back with its own time.
            held = marked if isinstance(exc, BudgetExhausted) else [*marked, *([event_at] if event_at else [])]
            hold_event_time(deps, session_id, max(held, default=None))
            raise
        if not report.finished:
            return Result("not_finished")
        event_at = max([*marked, *([event_at] if event_at else [])], default=None)
        return record(deps, session_id, report, event_id=event_id, message_id=message_id, event_at=event_at)


def hold_event_time(deps: Deps, session_id: str, event_at: datetime | None) -> None:
    if event_at is None:
        return
    try:
        with deps.db.transaction() as session:
            attempts.hold_event_time(session, session_id, event_at)
    except Exception as exc:  # the message is retried with its event time anyway
        log.warning("session %s: could not keep the event time (%s)", session_id, type(exc).__name__)


def record(
    deps: Deps,
    session_id: str,
    report: SessionReport | None,
    *,
    event_id: str | None,
    message_id: str | None,
    now: datetime | None = None,
    event_at: datetime | None = None,
) -> Result:
    """Audit row, attempt status and, when approved, reset token and outbox mail: one transaction,
    and nothing once the attempt is decided. `event_at`: as for process_session_event.

    With `report=None` (the vendor could not say) only the expiry rule can decide. Every decider
    locks its attempt's row first, then the chain: a racing worker either committed before (and the
    attempt reads decided) or waits, and a decision waiting for its attempt holds up no other.
    Holding the chain also serialises the recovery lock's count of a user's refusals
    (usecases.protect), and the application's events are written in the same transaction.
    """
    now = now or utcnow()
    digest_key = deps.digest_key()
    with deps.db.transaction() as session:
        found = attempts.for_deciding(session, session_id, lock=True)
        if found is None or found[0].decided:
            return Result("already_decided")
        attempt = found[0]
        head = audit_log.lock_chain(session)
        guard = AccountGuard(session, deps.lock_policy, deps.settings.attempt_alert_interval, now)
        seen: dict[str, Recipient] = {}

        def find_user(email: str) -> str | None:
            user = users.find_user(session, email)
            if user is not None:
                seen[user.id] = user
            return user.id if user else None

        if report is None:
            decision = expire(attempt, now, deps.policy)
        else:
            decision = decide(report, attempt, find_user, now, deps.policy, guard.is_locked, event_at)
        if decision is None:
            return Result("not_finished")
        attempts.settle(session, attempt.id, STATUS_BY_REASON.get(decision.reason, decision.outcome), now)
        mail_id = _issue_reset(deps, session, attempt.id, decision, seen, now)
        aftermath = guard.after(decision, attempt.id, seen.get(decision.matched_user_id or ""))
        row = audit_log.new_row(
            decision,
            attempt_id=attempt.id,
            session_id=session_id,
            client_reference_id=report.client_reference_id if report else None,
            decided_at=now,
            event_id=event_id,
            message_id=message_id,
            digest_key=digest_key,
        )
        record_ = audit_log.append(session, row, head)
        deliveries = app_events.emit_decision(session, deps.settings, record_, aftermath.locked_until, now)
    with log_context(attempt_id=attempt.id):
        log.info("session %s: %s (%s)", session_id, decision.outcome, decision.reason)
    return Result(decision.outcome, mail_id or aftermath.mail_id, tuple(deliveries))


def _issue_reset(
    deps: Deps, session: Session, attempt_id: str, decision: Decision, seen: dict[str, Recipient], now: datetime
) -> str | None:
    """For an approval, the reset token and its email, to the local directory's address."""
    if not decision.approved or decision.matched_user_id is None:
        return None
    settings = deps.settings
    user = seen[decision.matched_user_id]
    return outbox.issue_reset(session, attempt_id, user, now, settings.reset_token_ttl, settings.reset_url)
