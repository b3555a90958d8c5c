"""The decision rules, first matching row wins (docs/design.md has them as a table)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from domain.flow import confirming_outcome, decisive_nodes
from domain.report import SessionReport

# 2: expiry judged by when the session finished (`finished_at`), no longer by when the decision is made;
# the per-account recovery lock; the recognised email looked up right after recognition.
RULES_VERSION = "2"
APPROVED = "approved"
DENIED = "denied"

REASONS = (
    "attempt_expired",
    "reference_mismatch",
    "session_not_complete",
    "no_face",
    "face_not_recognized",
    "deepfake_detected",
    "liveness_failed",
    "matched_face_has_no_local_user",
    "account_recovery_locked",
    "identity_not_confirmed",
    "verified",
)


@dataclass(frozen=True)
class Attempt:
    id: str
    created_at: datetime
    decided: bool
    client_reference_id: str | None = None
    flow: Sequence[Mapping[str, Any]] | None = None
    last_event_at: datetime | None = None  # latest signed status-event time held but not yet acted on


@dataclass(frozen=True)
class Policy:
    attempt_ttl: int = 1800
    require_conversation_confirmation: bool = False


@dataclass(frozen=True)
class Decision:
    outcome: str
    reason: str
    session_status: str | None = None
    recognition: str | None = None
    liveness: str | None = None
    conversation: str | None = None
    matched_user_id: str | None = None
    recognized_email: str | None = None  # normalised; the caller digests it and never stores it
    rules_version: str = RULES_VERSION

    @property
    def approved(self) -> bool:
        return self.outcome == APPROVED


UserLookup = Callable[[str], str | None]  # normalised email -> local user id
LockLookup = Callable[[str], bool]  # local user id -> are that user's recoveries locked now


def never_locked(user_id: str) -> bool:
    return False


def normalise_email(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    return email or None


def reported_emails(session: SessionReport) -> set[str]:
    """Every address any node reported, normalised: a superset of what decide() may look up."""
    found = (normalise_email(node.report.get("email")) for node in session.nodes.values())
    return {email for email in found if email}


def deadline(created_at: datetime, policy: Policy) -> datetime:
    """When an attempt created at `created_at` expires: the one source of every attempt's deadline."""
    return created_at + timedelta(seconds=policy.attempt_ttl)


def expired(attempt: Attempt, now: datetime, policy: Policy) -> bool:
    return now > deadline(attempt.created_at, policy)


def finished_at(session: SessionReport, attempt: Attempt, event_at: datetime | None, now: datetime) -> datetime:
    """When the session is taken to have finished: what the expiry rule judges, never when we decide.

    A completion time the vendor reports wins. Otherwise a finished session changes status no more, so
    its finish is the latest signed status event we hold for it: the one being acted on (`event_at`) or
    one recorded earlier. With no event at all (the reconciler), the moment we looked. Never later than
    `now`: evidence from the future is no evidence.
    """
    if session.finished_at is not None:
        return min(session.finished_at, now)
    held = [moment for moment in (event_at, attempt.last_event_at) if moment is not None]
    return min(max(held), now) if held else now


def expire(attempt: Attempt, now: datetime, policy: Policy, session_status: str | None = None) -> Decision | None:
    """The reconciler's verdict on a pending attempt it could not decide otherwise."""
    if attempt.decided or not expired(attempt, now, policy):
        return None
    return Decision(DENIED, "attempt_expired", session_status=session_status)


def decide(
    session: SessionReport,
    attempt: Attempt,
    find_user: UserLookup,
    now: datetime,
    policy: Policy,
    is_locked: LockLookup = never_locked,
    event_at: datetime | None = None,
) -> Decision | None:
    """None means: record nothing (session unfinished, or attempt already decided).

    Once the face is recognised its email is looked up, so that the denials after recognition
    (a deepfake, a failed liveness check) still name the local user they were aimed at.
    `event_at`: the signed time of the status event being acted on, if any (see `finished_at`).
    """
    if not session.finished or attempt.decided:
        return None
    recognition_id, liveness_id, conversation_id = decisive_nodes(attempt.flow)
    recognition = session.outcome(recognition_id)
    liveness = session.outcome(liveness_id)
    conversation = session.outcome(conversation_id)
    email = None
    node = session.nodes.get(recognition_id)
    if node is not None:
        email = normalise_email(node.report.get("email"))

    def verdict(outcome: str, reason: str, user_id: str | None = None) -> Decision:
        return Decision(outcome, reason, session.status, recognition, liveness, conversation, user_id, email)

    if expired(attempt, finished_at(session, attempt, event_at, now), policy):
        return verdict(DENIED, "attempt_expired")
    if session.client_reference_id is not None and session.client_reference_id != attempt.client_reference_id:
        return verdict(DENIED, "reference_mismatch")
    if not session.successful:
        return verdict(DENIED, "session_not_complete")
    if recognition == "noFace":
        return verdict(DENIED, "no_face")
    if recognition != "recognized":
        return verdict(DENIED, "face_not_recognized")
    user_id = find_user(email) if email else None
    if liveness == "deepfakeDetected":
        return verdict(DENIED, "deepfake_detected", user_id)
    if liveness != "livenessDetected":
        return verdict(DENIED, "liveness_failed", user_id)
    if user_id is None:
        return verdict(DENIED, "matched_face_has_no_local_user")
    if is_locked(user_id):
        return verdict(DENIED, "account_recovery_locked", user_id)
    if policy.require_conversation_confirmation and conversation != confirming_outcome(attempt.flow, conversation_id):
        return verdict(DENIED, "identity_not_confirmed", user_id)
    return verdict(APPROVED, "verified", user_id)


@dataclass(frozen=True)
class Rule:
    """One row of the rules table, in words: what auditors read on a decision's page and in the docs."""

    reason: str
    outcome: str
    condition: str
    reads: str | None = None  # the flow node type whose outcome this rule tests, if any


# The rules in words, one per reason: the single decision page and docs/auditors.md's table are both made
# from this. Rows apply in the order of REASONS; the first that matches decides.
RULES: Mapping[str, Rule] = {
    rule.reason: rule
    for rule in (
        Rule(
            "attempt_expired",
            DENIED,
            "the session finished after the attempt's deadline (created + ATTEMPT_TTL), judged by the signed"
            " time of the event that reported the finish, not by when the decision was made",
        ),
        Rule(
            "reference_mismatch",
            DENIED,
            "the session named a clientReferenceId other than this attempt's",
        ),
        Rule(
            "session_not_complete",
            DENIED,
            "the session ended unsuccessfully (incomplete, expired, canceled, failed or abandoned)",
        ),
        Rule("no_face", DENIED, "recognition saw no face (noFace)", "recognition"),
        Rule(
            "face_not_recognized",
            DENIED,
            "recognition did not recognise an enrolled face (newUser, or no outcome)",
            "recognition",
        ),
        Rule(
            "deepfake_detected",
            DENIED,
            "the liveness check after a recognised face detected a deepfake (deepfakeDetected)",
            "liveness_detection",
        ),
        Rule(
            "liveness_failed",
            DENIED,
            "the liveness check after a recognised face did not confirm a live person (noFace, or no outcome)",
            "liveness_detection",
        ),
        Rule(
            "matched_face_has_no_local_user",
            DENIED,
            "the recognised profile's email (trimmed, any case) matches no local user",
            "recognition",
        ),
        Rule(
            "account_recovery_locked",
            DENIED,
            "that user's recoveries are locked: RECOVERY_LOCK_THRESHOLD denials for deepfake_detected, "
            "liveness_failed or identity_not_confirmed within RECOVERY_LOCK_WINDOW",
        ),
        Rule(
            "identity_not_confirmed",
            DENIED,
            "REQUIRE_CONVERSATION_CONFIRMATION is on and the conversation did not end in its confirming outcome",
            "conversation",
        ),
        Rule(
            "verified",
            APPROVED,
            "none of the rows above matched: a live, recognised face of a local user",
        ),
    )
}


def rule_for(reason: str) -> Rule | None:
    return RULES.get(reason)


def rules_in_order() -> list[Rule]:
    """The table's rows, in the order they are tried (reasons without words are left out, never invented)."""
    return [RULES[reason] for reason in REASONS if reason in RULES]
