"""Sending a queued reset email at most once."""

from __future__ import annotations

import logging

from adapters import outbox
from adapters.db import transaction
from adapters.mailer import compose
from workers.context import Deps
from workers.decisions import utcnow

log = logging.getLogger(__name__)


def send_reset_email(deps: Deps, mail_id: str) -> bool:
    """Claim, send, mark sent.

    A backend error hands the mail back for a retry; a sender that dies between claim and
    mark leaves it `sending`, and it is not sent again: a missing email can be asked for
    anew, a doubled reset link cannot be taken back.
    """
    with transaction(deps.sessions) as session:
        mail = outbox.claim(session, mail_id, utcnow())
        if mail is None:
            log.info("mail %s: already claimed or sent; nothing to do", mail_id)
            return False
        to_address, reset_url = mail.to_address, mail.reset_url
    assert reset_url is not None  # noqa: S101
    message = compose(deps.settings.mail_from, to_address, reset_url, deps.settings.reset_token_ttl, mail_id)
    try:
        deps.mailer.send(message)
    except Exception:
        # The backend refused before taking the message: give it back for Dramatiq's retry.
        with transaction(deps.sessions) as session:
            outbox.release(session, mail_id)
        raise
    with transaction(deps.sessions) as session:
        outbox.mark_sent(session, mail_id, utcnow())
    log.info("mail %s: sent", mail_id)
    return True
