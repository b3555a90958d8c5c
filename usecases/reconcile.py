"""The reconciler: what webhooks, queues or workers lost, it finds and decides through the same path.

Safe to run in several processes at once: every decision goes through `decide.record`, which
decides under the chain lock and only while the attempt is pending.

Each pass looks at pending attempts in the order they fall due (`domain.recheck`: backoff per
attempt, and a look just before each deadline), spends at most RECONCILE_MAX_CALLS FaceSign calls,
and isolates every attempt and every mail: a failure is logged and counted, and the pass goes on.
Only a failure that is clearly everyone's (the database gone, the mail server down: several in a
row) ends that part of the pass early, leaving the rest for the next pass instead of timing out
on each item in turn.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from adapters.db import attempts, outbox
from adapters.db.attempts import Due
from adapters.db.engine import DatabaseUnavailable
from adapters.facesign.budget import Caller
from adapters.facesign.client import BudgetExhausted, FaceSignError, FaceSignNotFound, FaceSignTransient
from adapters.logs import session_context
from adapters.status_metrics import status_metrics
from domain.audit_verify import Verdict
from domain.recheck import Backoff, next_check
from domain.report import ReportError, SessionReport, parse_session
from domain.rules import deadline
from usecases import app_events
from usecases.anchoring import AnchorWriter
from usecases.audit_verification import verify_full
from usecases.decide import Result, record, utcnow
from usecases.deps import Deps
from usecases.send_mail import send_reset_email

log = logging.getLogger(__name__)

BATCH = 500  # orphaned mails per pass
MAIL_GRACE = timedelta(seconds=60)  # an outbox mail this old was never picked up: send it
SEND_LEASE = timedelta(seconds=60)  # a send claimed this long ago died with its worker
UNSTARTED_GRACE = timedelta(minutes=5)  # an attempt still without a session this long after creation never started
MAX_BACKOFF = timedelta(minutes=15)
IN_A_ROW = 3  # failures of one kind in a row that mean the failure is everyone's


def backoff(deps: Deps) -> Backoff:
    settings = deps.settings
    return Backoff(
        base=timedelta(seconds=max(settings.reconcile_after, settings.reconcile_interval, 1)),
        cap=MAX_BACKOFF,
        lead=timedelta(seconds=settings.reconcile_interval),
    )


def fetch(deps: Deps, session_id: str) -> tuple[SessionReport | None, str]:
    """The session as FaceSign sees it now, or None when it cannot say; and what became of the asking:
    "answered", "vendor_unavailable" (an outage is no evidence that the session is gone) or "no_budget"
    (nothing was asked: the receivers and workers left no budget over)."""
    try:
        # Only the budget the receivers and workers leave over (adapters/facesign/budget.py).
        return parse_session(deps.facesign.get_session(session_id, caller=Caller.RECONCILER)), "answered"
    except BudgetExhausted as exc:
        # Counted in facesign_budget_waits_total; a line per stale session would flood the log.
        log.debug("session %s: no FaceSign budget left over for the reconciler (%.1f s)", session_id, exc.retry_after)
        return None, "no_budget"
    except FaceSignNotFound:
        log.warning("session %s: unknown to FaceSign", session_id)
        return None, "answered"
    except FaceSignTransient as exc:
        log.warning("session %s: FaceSign unavailable to the reconciler (%s)", session_id, exc)
        return None, "vendor_unavailable"
    except (FaceSignError, ReportError) as exc:
        log.warning("session %s: FaceSign answered nothing usable (%s)", session_id, type(exc).__name__)
        return None, "answered"


def check(deps: Deps, due: Due, now: datetime) -> Result:
    """One look at one attempt: decide it if its session finished (or it expired).

    No event is at hand, so the expiry rule judges the finish by the latest event time on record, else
    by now. While FaceSign cannot answer (or no budget is left to ask), nothing is expired until a whole
    ATTEMPT_TTL past the deadline.
    """
    report, asked = fetch(deps, due.session_id)
    ends = deadline(due.created_at, deps.policy)
    if report is not None and report.finished:
        return record(deps, due.session_id, report, event_id=None, message_id=None, now=now)
    if now > ends and (asked == "answered" or now > ends + timedelta(seconds=deps.policy.attempt_ttl)):
        return record(deps, due.session_id, None, event_id=None, message_id=None, now=now)
    return Result("not_finished" if asked == "answered" else asked)


def decide_due(deps: Deps, now: datetime, tally: Counter[str], deliveries: list[int]) -> list[str]:
    """Look at the attempts due, at most RECONCILE_MAX_CALLS of them; returns the mails their decisions
    queued, and adds the application events' deliveries they wrote to `deliveries`. Whatever stays
    pending (undecided, or failed) is scheduled for its next look."""
    stale_before = now - timedelta(seconds=deps.settings.reconcile_after)
    with deps.db.reading() as session:
        due = attempts.due_for_check(session, now, stale_before, deps.settings.reconcile_max_calls)
    mails: list[str] = []
    later: dict[str, datetime] = {}
    schedule = backoff(deps)
    database_failures = 0
    for index, item in enumerate(due):
        with session_context(item.session_id):
            try:
                result = check(deps, item, now)
            except Exception as exc:
                log.warning("reconcile: attempt %s failed: %s", item.attempt_id, type(exc).__name__, exc_info=True)
                tally["errors"] += 1
                result = Result("error")
                database_failures = database_failures + 1 if isinstance(exc, DatabaseUnavailable) else 0
            else:
                database_failures = 0
                tally[result.status] += 1
        if result.status == "no_budget":
            # The budget is shared: the rest would be refused too. Nothing was asked, so nothing is
            # rescheduled; they stay due, in their order, for the next pass.
            tally["no_budget"] += len(due) - index - 1
            log.info("reconcile: no FaceSign budget left over; %d attempts wait for the next pass", len(due) - index)
            break
        if result.status in ("not_finished", "vendor_unavailable", "error"):
            # A failing attempt goes to the back of the line too, so it cannot hold the head pass after pass.
            later[item.attempt_id] = next_check(now, item.checks + 1, deadline(item.created_at, deps.policy), schedule)
        if result.mail_id:
            mails.append(result.mail_id)
        deliveries.extend(result.deliveries)
        if database_failures >= IN_A_ROW:
            log.warning("reconcile: the database does not answer; the rest waits for the next pass")
            return mails
    with deps.db.transaction() as session:
        attempts.reschedule(session, later)
    return mails


def close_unstarted(deps: Deps, now: datetime, tally: Counter[str]) -> None:
    """Attempts whose FaceSign session was never created (the vendor call failed and the receiver
    could not record it): nobody holds their id, so they are closed as `failed`."""
    with deps.db.transaction() as session:
        closed = attempts.fail_unstarted(session, now, now - UNSTARTED_GRACE)
    if closed:
        tally["start_failed"] += closed


def mails_nobody_sent(deps: Deps, now: datetime, tally: Counter[str]) -> list[str]:
    # Claiming a mail is atomic, so a shorter grace (RECONCILE_AFTER=0 after a drain) cannot double-send.
    grace = min(MAIL_GRACE, timedelta(seconds=deps.settings.reconcile_after))
    if deps.mailer.idempotent:
        # Repeating an interrupted hand-over is harmless here, so a killed sender does not cost the email.
        with deps.db.transaction() as session:
            resumed = outbox.release_abandoned(session, now - min(SEND_LEASE, grace))
        if resumed:
            tally["mail_resumed"] += resumed
    with deps.db.reading() as session:
        return list(outbox.pending_mail(session, now - grace, BATCH))


def send_all(mail_ids: list[str], send: Callable[[str], object], tally: Counter[str]) -> None:
    failures = 0
    for index, mail_id in enumerate(mail_ids):
        try:
            send(mail_id)
        except Exception as exc:
            log.warning("reconcile: mail %s not sent: %s", mail_id, type(exc).__name__)
            tally["mail_failed"] += 1
            failures += 1
            if failures >= IN_A_ROW:
                log.warning("reconcile: mail keeps failing; %d mails wait for the next pass", len(mail_ids) - index - 1)
                tally["mail_deferred"] += len(mail_ids) - index - 1
                return
            continue
        failures = 0
        tally["mail"] += 1


def hand_on_events(
    deps: Deps,
    delivery_ids: list[int],
    deliver_event: Callable[[int], object] | None,
    now: datetime,
    tally: Counter[str],
) -> None:
    """Deliveries of the application's events: enqueued (`deliver_event`), or delivered here in
    embedded mode. Each on its own: one that fails waits for the next pass."""
    for delivery_id in delivery_ids:
        try:
            if deliver_event is not None:
                deliver_event(delivery_id)
            else:
                app_events.deliver(deps, delivery_id, now)
        except Exception as exc:
            log.warning("reconcile: event delivery %s not handed on: %s", delivery_id, type(exc).__name__)
            tally["events_failed"] += 1


def stranded_events(deps: Deps, now: datetime) -> list[int]:
    """Deliveries due for longer than the grace, or leased by a worker that died. A duplicate message
    is harmless: only one claim of a delivery wins."""
    grace = min(MAIL_GRACE, timedelta(seconds=deps.settings.reconcile_after))
    return list(app_events.stranded(deps, now, grace, BATCH))


def reconcile_once(
    deps: Deps,
    now: datetime | None = None,
    send_mail: Callable[[str], object] | None = None,
    deliver_event: Callable[[int], object] | None = None,
) -> Counter[str]:
    """One pass: decide stale pending attempts, expire the hopeless, send mail nobody sent, and hand on
    the application's events whose delivery message was lost. `deliver_event` enqueues one delivery
    (without it, the pass delivers them itself)."""
    now = now or utcnow()
    send = send_mail or (lambda mail_id: send_reset_email(deps, mail_id))
    tally: Counter[str] = Counter()
    close_unstarted(deps, now, tally)
    deliveries: list[int] = []
    mails = decide_due(deps, now, tally, deliveries)
    mails += mails_nobody_sent(deps, now, tally)
    send_all(list(dict.fromkeys(mails)), send, tally)
    hand_on_events(deps, deliveries, deliver_event, now, tally)
    stranded = stranded_events(deps, now)
    if stranded:
        tally["events_resumed"] += len(stranded)
        hand_on_events(deps, stranded, deliver_event, now, tally)
    if tally:
        log.info("reconcile pass: %s", dict(tally))
    return tally


def check_chain(deps: Deps, anchors: AnchorWriter) -> bool:
    """Verify the whole audit chain (noted as a full checkpoint), publish the verdict as gauges and
    anchor its head outside the database; True when intact."""
    verification = verify_full(deps.db, anchors.by)
    publish(verification.verdict)
    if verification.verdict.ok:
        anchors.anchored(verification)
    return verification.verdict.ok


def publish(verdict: Verdict) -> None:
    status_metrics().chain_checked(verdict.ok, verdict.count, time.time())
    if not verdict.ok:
        log.error("audit %s; run `facesign-recovery audit verify` and see docs/auditors.md", verdict.describe())


def run_forever(
    deps: Deps,
    stop: threading.Event,
    send_mail: Callable[[str], object] | None = None,
    deliver_event: Callable[[int], object] | None = None,
) -> None:
    """Passes every RECONCILE_INTERVAL seconds until `stop` is set; a failed pass is logged, not fatal.

    Every AUDIT_VERIFY_INTERVAL seconds (0: never) a pass also verifies the whole audit chain; every
    AUDIT_ANCHOR_INTERVAL seconds it verifies the rows appended since and anchors the head outside the
    database (AUDIT_ANCHOR_SINK); stopping writes one last anchor.
    """
    anchors = AnchorWriter.for_settings(deps.db, deps.settings, "reconciler")
    verify_every = deps.settings.audit_verify_interval
    next_check_at = time.monotonic()
    try:
        while not stop.is_set():
            try:
                reconcile_once(deps, send_mail=send_mail, deliver_event=deliver_event)
                status_metrics().reconciled(time.time())
            except Exception:
                log.exception("reconcile pass failed; trying again next interval")
            if verify_every and time.monotonic() >= next_check_at:
                next_check_at = time.monotonic() + verify_every
                try:
                    check_chain(deps, anchors)
                except Exception:
                    log.exception("audit chain verification failed to run; trying again next interval")
            checked = anchors.tick()
            if checked is not None:
                publish(checked.verdict)
            stop.wait(deps.settings.reconcile_interval)
    finally:
        anchors.close()
