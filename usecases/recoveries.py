"""Starting a recovery, reporting its status (never its reason), and redeeming its reset token."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import TypedDict

from adapters.db import attempts, tokens
from domain.audit_chain import address_digest
from domain.rules import deadline
from domain.times import format_time
from usecases.deps import Deps

log = logging.getLogger(__name__)

KINDS = ("forgot_password",)


class StartedRecovery(TypedDict):
    id: str
    url: str
    expiresAt: str


def start_recovery(deps: Deps, kind: str, now: datetime, *, client: str | None = None) -> StartedRecovery:
    """Create the FaceSign session and the attempt; raises FaceSignError when FaceSign cannot.

    `client`: the caller's address, kept only as a keyed digest.
    """
    attempt_id = secrets.token_urlsafe(24)  # 192 random bits: unguessable, never sequential
    answer = deps.facesign.create_session(
        attempt_id, {"recoveryType": kind, "requestedAt": format_time(now)}, deps.flow
    )
    session_id = answer["session"]["id"]
    url = answer["clientSecret"]["url"]
    with deps.db.transaction() as session:
        attempts.create_attempt(
            session, attempt_id, session_id, deps.flow, url, now, kind, client_digest=_client_digest(deps, client)
        )
    log.info("recovery %s started with session %s", attempt_id, session_id)
    return {"id": attempt_id, "url": url, "expiresAt": format_time(deadline(now, deps.policy))}


def recovery_status(deps: Deps, attempt_id: str, now: datetime) -> str | None:
    """pending, approved, denied or expired; None for an unknown attempt."""
    with deps.db.reading() as session:
        found = attempts.status_of(session, attempt_id)
    if found is None:
        return None
    status, created_at = found
    if status == attempts.PENDING and now > deadline(created_at, deps.policy):
        return "expired"  # the reconciler records the decision; the page need not wait for it
    return status


def redeem_reset_token(deps: Deps, token: str, now: datetime, *, client: str | None = None) -> str | None:
    """The user id, exactly once per unexpired token; None for anything else. `client` as for start_recovery."""
    digest = _client_digest(deps, client)
    with deps.db.transaction() as session:
        return tokens.redeem(session, token, now, client_digest=digest)


def _client_digest(deps: Deps, client: str | None) -> str | None:
    return address_digest(deps.digest_key(), client) if client else None
