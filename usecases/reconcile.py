"""The reconciler: what webhooks, queues or workers lost, it finds and decides through the same path.

Safe to run in several processes at once: every decision goes through `decide.record`, which
decides under the chain lock and only while the attempt is pending.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from adapters.db import attempts, outbox
from adapters.facesign.client import FaceSignError, FaceSignNotFound
from adapters.logs import session_context
from adapters.status_metrics import status_metrics
from domain.report import ReportError, SessionReport, parse_session
from usecases import app_events
from usecases.audit import verify_chain
from usecases.decide import record, utcnow
from usecases.deps import Deps
from usecases.send_mail import send_reset_email

log = logging.getLogger(__name__)

BATCH = 500
MAIL_GRACE = timedelta(seconds=60)  # an outbox mail this old was never picked up: send it
SEND_LEASE = timedelta(seconds=60)  # a send claimed this long ago died with its worker


def fetch(deps: Deps, session_id: str) -> SessionReport | None:
    """The session as FaceSign sees it now, or None when it cannot say (expiry may still decide)."""
    try:
        return parse_session(deps.facesign.get_session(session_id))
    except FaceSignNotFound:
        log.warning("session %s: unknown to FaceSign", session_id)
    except (FaceSignError, ReportError) as exc:
        log.warning("session %s: FaceSign unavailable to the reconciler (%s)", session_id, type(exc).__name__)
    return None


def reconcile_once(
    deps: Deps,
    now: datetime | None = None,
    send_mail: Callable[[str], object] | None = None,
    deliver_event: Callable[[int], object] | None = None,
) -> Counter[str]:
    """One pass: decide stale pending attempts, expire the hopeless, send mail nobody sent, and hand
    back the application's events whose delivery message was lost. `deliver_event` enqueues one
    delivery (without it, the pass delivers them itself)."""
    now = now or utcnow()
    send = send_mail or (lambda mail_id: send_reset_email(deps, mail_id))
    tally: Counter[str] = Counter()
    with deps.db.reading() as session:
        stale = attempts.pending_sessions(session, now - timedelta(seconds=deps.settings.reconcile_after), BATCH)
    for session_id in stale:
        with session_context(session_id):
            report = fetch(deps, session_id)
            result = record(deps, session_id, report, event_id=None, message_id=None, now=now)
            if result.status == "not_finished" and report is not None:
                result = record(deps, session_id, None, event_id=None, message_id=None, now=now)
        tally[result.status] += 1
        if result.mail_id:
            send(result.mail_id)
            tally["mail"] += 1
        for delivery_id in result.deliveries:
            _deliver(deps, delivery_id, deliver_event, now)
    # Claiming a mail is atomic, so a shorter grace (RECONCILE_AFTER=0 after a drain) cannot double-send.
    grace = min(MAIL_GRACE, timedelta(seconds=deps.settings.reconcile_after))
    if deps.mailer.idempotent:
        # Repeating an interrupted hand-over is harmless here, so a killed sender does not cost the email.
        with deps.db.transaction() as session:
            resumed = outbox.release_abandoned(session, now - min(SEND_LEASE, grace))
        if resumed:
            tally["mail_resumed"] += resumed
    with deps.db.reading() as session:
        orphaned = outbox.pending_mail(session, now - grace, BATCH)
    for mail_id in orphaned:
        send(mail_id)
        tally["mail"] += 1
    events_resumed = resume_events(deps, now, grace, deliver_event)
    if events_resumed:
        tally["events_resumed"] += events_resumed
    if tally:
        log.info("reconcile pass: %s", dict(tally))
    return tally


def resume_events(deps: Deps, now: datetime, grace: timedelta, deliver_event: Callable[[int], object] | None) -> int:
    """Deliveries due for longer than `grace`, or leased by a worker that died: enqueue them again.
    A duplicate message is harmless: only one claim of a delivery wins."""
    stranded = app_events.stranded(deps, now, grace, BATCH)
    for delivery_id in stranded:
        _deliver(deps, delivery_id, deliver_event, now)
    return len(stranded)


def _deliver(deps: Deps, delivery_id: int, deliver_event: Callable[[int], object] | None, now: datetime) -> None:
    if deliver_event is not None:
        deliver_event(delivery_id)
    else:
        app_events.deliver(deps, delivery_id, now)


def check_chain(deps: Deps) -> bool:
    """Verify the whole audit chain and publish the verdict as gauges; True when intact."""
    verdict = verify_chain(deps.db)
    status_metrics().chain_checked(verdict.ok, verdict.count, time.time())
    if not verdict.ok:
        log.error("audit %s; run `facesign-recovery audit verify` and see docs/auditors.md", verdict.describe())
    return verdict.ok


def run_forever(
    deps: Deps,
    stop: threading.Event,
    send_mail: Callable[[str], object] | None = None,
    deliver_event: Callable[[int], object] | None = None,
) -> None:
    """Passes every RECONCILE_INTERVAL seconds until `stop` is set; a failed pass is logged, not fatal.

    Every AUDIT_VERIFY_INTERVAL seconds (0: never) a pass also verifies the audit chain.
    """
    verify_every = deps.settings.audit_verify_interval
    next_check = time.monotonic()
    while not stop.is_set():
        try:
            reconcile_once(deps, send_mail=send_mail, deliver_event=deliver_event)
            status_metrics().reconciled(time.time())
        except Exception:
            log.exception("reconcile pass failed; trying again next interval")
        if verify_every and time.monotonic() >= next_check:
            next_check = time.monotonic() + verify_every
            try:
                check_chain(deps)
            except Exception:
                log.exception("audit chain verification failed to run; trying again next interval")
        stop.wait(deps.settings.reconcile_interval)
