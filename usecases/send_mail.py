"""Sending a queued reset email at most once."""

from __future__ import annotations

import logging

from adapters.db import outbox
from adapters.mail.compose import compose
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
    if mail.reset_url is None:
        raise RuntimeError(f"mail {mail_id} has no link to send")
    message = compose(deps.settings.mail_from, mail.to_address, mail.reset_url, deps.settings.reset_token_ttl, mail_id)
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
