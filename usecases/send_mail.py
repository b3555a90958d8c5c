"""Sending a queued email (the reset link, or an alert to the account's owner) at most once."""

from __future__ import annotations

import logging
from email.message import EmailMessage

from adapters.db import outbox
from adapters.mail.compose import compose, compose_alert
from domain.notices import LOCK_NOTICE, RESET
from domain.times import parse_time
from usecases.decide import utcnow
from usecases.deps import Deps

log = logging.getLogger(__name__)


def send_reset_email(deps: Deps, mail_id: str) -> bool:
    """Claim, send, mark sent.

    A backend error hands the mail back for a retry; a sender that dies between claim and
    mark leaves it `sending`, and it is not sent again: a missing email can be asked for
    anew, a doubled reset link cannot be taken back.
    """
    with deps.db.transaction() as session:
        mail = outbox.claim(session, mail_id, utcnow())
    if mail is None:
        log.info("mail %s: already claimed or sent; nothing to do", mail_id)
        return False
    message = _compose(deps, mail_id, mail)
    try:
        deps.mailer.send(message)
    except Exception:
        # The backend refused before taking the message: give it back for the caller's retry.
        with deps.db.transaction() as session:
            outbox.release(session, mail_id)
        raise
    with deps.db.transaction() as session:
        outbox.mark_sent(session, mail_id, utcnow())
    log.info("mail %s: sent", mail_id)
    return True


def _compose(deps: Deps, mail_id: str, mail: outbox.Claimed) -> EmailMessage:
    sender = deps.settings.mail_from
    if mail.kind == RESET:
        if mail.reset_url is None:
            raise RuntimeError(f"mail {mail_id} has no link to send")
        return compose(sender, mail.to_address, mail.reset_url, deps.settings.reset_token_ttl, mail_id)
    details = mail.details or {}
    until = details.get("lockedUntil")
    return compose_alert(
        sender,
        mail.to_address,
        mail_id,
        refused=int(details.get("refused", 1)),
        locked_until=parse_time(until) if isinstance(until, str) else None,
        lock_set=mail.kind == LOCK_NOTICE,
    )
