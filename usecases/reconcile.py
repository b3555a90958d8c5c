"""The reconciler: what webhooks, queues or workers lost, it finds and decides through the same path.

Safe to run in several processes at once: every decision goes through `decide.record`, which
decides under the chain lock and only while the attempt is pending.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from adapters.db import attempts, outbox
from adapters.facesign.client import FaceSignError, FaceSignNotFound
from adapters.logs import session_context
from domain.report import ReportError, SessionReport, parse_session
from usecases.anchoring import AnchorWriter
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
    deps: Deps, now: datetime | None = None, send_mail: Callable[[str], object] | None = None
) -> Counter[str]:
    """One pass: decide stale pending attempts, expire the hopeless, send mail nobody sent."""
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
    if tally:
        log.info("reconcile pass: %s", dict(tally))
    return tally


def run_forever(deps: Deps, stop: threading.Event, send_mail: Callable[[str], object] | None = None) -> None:
    """Passes every RECONCILE_INTERVAL seconds until `stop` is set; a failed pass is logged, not fatal.
    Each pass also lets the audit anchor writer anchor the chain when AUDIT_ANCHOR_INTERVAL has passed,
    and stopping writes one last anchor."""
    anchors = AnchorWriter.for_settings(deps.db, deps.settings, "reconciler")
    try:
        while not stop.is_set():
            try:
                reconcile_once(deps, send_mail=send_mail)
            except Exception:
                log.exception("reconcile pass failed; trying again next interval")
            anchors.tick()
            stop.wait(deps.settings.reconcile_interval)
    finally:
        anchors.close()
