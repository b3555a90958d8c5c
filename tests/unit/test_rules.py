"""The decision rules, one table row per rule plus the precedence between them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.flow import build_recovery_flow, validate_flow
from domain.recheck import Backoff, next_check
from domain.report import parse_session
from domain.rules import (
    APPROVED,
    DENIED,
    REASONS,
    RULES_VERSION,
    Attempt,
    Decision,
    Policy,
    decide,
    expire,
    normalise_email,
    reported_emails,
)

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads"
CREATED = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
REF = "rec_7f3a9c1e5b2d4a6f8e0c"
USERS = {"alice@example.com": "user-alice", "locked@example.com": "user-locked"}
LOCKED_USERS = {"user-locked"}  # users whose recoveries the lock holds (RECOVERY_LOCK_THRESHOLD reached)
LOCKED = "locked@example.com"
TTL = 1800
ABSENT: Any = object()  # leave the key (or the whole node) out of the payload
NO_OUTCOME: Any = object()  # the node is there, without an `outcome` key


def find_user(email: str) -> str | None:
    return USERS.get(email)


def is_locked(user_id: str) -> bool:
    return user_id in LOCKED_USERS


def node(node_id: str, outcome: Any, report: Mapping[str, Any] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"nodeId": node_id, "report": dict(report or {})}
    if outcome is not NO_OUTCOME:
        item["outcome"] = outcome
    return item


def payload(
    status: Any = "complete",
    reference: Any = REF,
    recognition: Any = "recognized",
    email: Any = "alice@example.com",
    liveness: Any = "livenessDetected",
    conversation: Any = "identity_confirmed",
    ids: tuple[str, str, str] = ("recognition", "liveness_known", "confirm_identity"),
    extra: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """A `GET /sessions/{id}` answer in the vendor's shape."""
    recognition_id, liveness_id, conversation_id = ids
    profile: dict[str, Any] = {"name": "Alice Example", "phone": "+15550100", "company": "Acme"}
    if email is not ABSENT:
        profile["email"] = email
    reports = [node("start", "greeting"), node("greeting", "g1")]
    if recognition is not ABSENT:
        reports.append(node(recognition_id, recognition, profile))
    if liveness is not ABSENT:
        reports.append(node(liveness_id, liveness, {"score": 0.97}))
    if conversation is not ABSENT:
        reports.append(node(conversation_id, conversation))
    reports.extend(extra)
    session: dict[str, Any] = {"id": "sess_1", "report": {"nodeReports": reports}}
    if status is not ABSENT:
        session["status"] = status
    if reference is not ABSENT:
        session["clientReferenceId"] = reference
    return {"session": session, "clientSecret": {"url": "https://verify.facesign.ai/s/sess_1"}}


def attempt(
    decided: bool = False, reference: str | None = REF, flow: Any = None, created_at: datetime = CREATED
) -> Attempt:
    return Attempt(id="att_1", created_at=created_at, decided=decided, client_reference_id=reference, flow=flow)


def run(
    session: Mapping[str, Any],
    att: Attempt | None = None,
    elapsed: timedelta = timedelta(seconds=60),
    confirm: bool = False,
) -> Decision | None:
    att = att or attempt()
    policy = Policy(attempt_ttl=TTL, require_conversation_confirmation=confirm)
    return decide(parse_session(session), att, find_user, att.created_at + elapsed, policy, is_locked)


SECONDS = timedelta(seconds=1)
TTL_EXACT = timedelta(seconds=TTL)
VERIFIED = (APPROVED, "verified")


def denied(reason: str) -> tuple[str, str]:
    return (DENIED, reason)


# (id, payload overrides, attempt overrides, elapsed, require confirmation, expected (outcome, reason) or None)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], timedelta, bool, tuple[str, str] | None]] = [
    # session not finished: no decision yet
    ("status-created", {"status": "created"}, {}, SECONDS, False, None),
    ("status-inProgress", {"status": "inProgress"}, {}, SECONDS, False, None),
    ("status-empty", {"status": ""}, {}, SECONDS, False, None),
    ("status-weird", {"status": "weird"}, {}, SECONDS, False, None),
    ("status-absent", {"status": ABSENT}, {}, SECONDS, False, None),
    ("status-not-a-string", {"status": 3}, {}, SECONDS, False, None),
    ("status-Complete-wrong-case", {"status": "Complete"}, {}, SECONDS, False, None),
    ("unfinished-even-when-expired", {"status": "inProgress"}, {}, TTL_EXACT * 2, False, None),
    # attempt already decided: idempotent
    ("already-decided", {}, {"decided": True}, SECONDS, False, None),
    ("already-decided-and-expired", {}, {"decided": True}, TTL_EXACT * 2, False, None),
    ("already-decided-incomplete", {"status": "incomplete"}, {"decided": True}, SECONDS, False, None),
    # ATTEMPT_TTL: exactly at the TTL is still in time
    ("ttl-exactly", {}, {}, TTL_EXACT, False, VERIFIED),
    ("ttl-plus-one-second", {}, {}, TTL_EXACT + SECONDS, False, denied("attempt_expired")),
    ("ttl-plus-one-microsecond", {}, {}, TTL_EXACT + timedelta(microseconds=1), False, denied("attempt_expired")),
    ("ttl-minus-one-second", {}, {}, TTL_EXACT - SECONDS, False, VERIFIED),
    # clientReferenceId
    ("reference-mismatch", {"reference": "rec_someone_else"}, {}, SECONDS, False, denied("reference_mismatch")),
    ("reference-same", {"reference": REF}, {}, SECONDS, False, VERIFIED),
    ("reference-absent-in-session", {"reference": ABSENT}, {}, SECONDS, False, VERIFIED),
    ("reference-null-in-session", {"reference": None}, {}, SECONDS, False, VERIFIED),
    ("reference-empty-in-session", {"reference": ""}, {}, SECONDS, False, VERIFIED),
    ("reference-present-attempt-has-none", {}, {"reference": None}, SECONDS, False, denied("reference_mismatch")),
    ("reference-differs-by-case", {"reference": REF.upper()}, {}, SECONDS, False, denied("reference_mismatch")),
    # unsuccessful terminal statuses
    *[
        (f"terminal-{status}", {"status": status}, {}, SECONDS, False, denied("session_not_complete"))
        for status in ("incomplete", "canceled", "cancelled", "expired", "failed", "abandoned")
    ],
    # recognition
    ("recognition-noFace", {"recognition": "noFace"}, {}, SECONDS, False, denied("no_face")),
    ("recognition-newUser", {"recognition": "newUser"}, {}, SECONDS, False, denied("face_not_recognized")),
    ("recognition-node-missing", {"recognition": ABSENT}, {}, SECONDS, False, denied("face_not_recognized")),
    ("recognition-outcome-missing", {"recognition": NO_OUTCOME}, {}, SECONDS, False, denied("face_not_recognized")),
    ("recognition-outcome-null", {"recognition": None}, {}, SECONDS, False, denied("face_not_recognized")),
    ("recognition-garbage", {"recognition": "RECOGNIZED"}, {}, SECONDS, False, denied("face_not_recognized")),
    ("recognition-not-a-string", {"recognition": ["recognized"]}, {}, SECONDS, False, denied("face_not_recognized")),
    # liveness
    ("liveness-deepfake", {"liveness": "deepfakeDetected"}, {}, SECONDS, False, denied("deepfake_detected")),
    ("liveness-noFace", {"liveness": "noFace"}, {}, SECONDS, False, denied("liveness_failed")),
    ("liveness-node-missing", {"liveness": ABSENT}, {}, SECONDS, False, denied("liveness_failed")),
    ("liveness-outcome-missing", {"liveness": NO_OUTCOME}, {}, SECONDS, False, denied("liveness_failed")),
    ("liveness-garbage", {"liveness": "livenessdetected"}, {}, SECONDS, False, denied("liveness_failed")),
    # the recognised email against local users
    ("email-spaces-and-capitals", {"email": "  Alice@EXAMPLE.com\t"}, {}, SECONDS, False, VERIFIED),
    ("email-unknown", {"email": "bob@example.com"}, {}, SECONDS, False, denied("matched_face_has_no_local_user")),
    ("email-absent", {"email": ABSENT}, {}, SECONDS, False, denied("matched_face_has_no_local_user")),
    ("email-null", {"email": None}, {}, SECONDS, False, denied("matched_face_has_no_local_user")),
    ("email-number", {"email": 42}, {}, SECONDS, False, denied("matched_face_has_no_local_user")),
    ("email-list", {"email": ["alice@example.com"]}, {}, SECONDS, False, denied("matched_face_has_no_local_user")),
    ("email-blank", {"email": "   "}, {}, SECONDS, False, denied("matched_face_has_no_local_user")),
    # REQUIRE_CONVERSATION_CONFIRMATION on
    ("confirm-on-confirmed", {}, {}, SECONDS, True, VERIFIED),
    (
        "confirm-on-not-confirmed",
        {"conversation": "identity_not_confirmed"},
        {},
        SECONDS,
        True,
        denied("identity_not_confirmed"),
    ),
    ("confirm-on-missing", {"conversation": ABSENT}, {}, SECONDS, True, denied("identity_not_confirmed")),
    ("confirm-on-no-outcome", {"conversation": NO_OUTCOME}, {}, SECONDS, True, denied("identity_not_confirmed")),
    ("confirm-on-garbage", {"conversation": "yes"}, {}, SECONDS, True, denied("identity_not_confirmed")),
    # REQUIRE_CONVERSATION_CONFIRMATION off: the conversation does not count
    ("confirm-off-not-confirmed", {"conversation": "identity_not_confirmed"}, {}, SECONDS, False, VERIFIED),
    ("confirm-off-missing", {"conversation": ABSENT}, {}, SECONDS, False, VERIFIED),
    # precedence: first matching row wins
    (
        "expired-and-deepfake",
        {"liveness": "deepfakeDetected"},
        {},
        TTL_EXACT + SECONDS,
        False,
        denied("attempt_expired"),
    ),
    ("expired-and-mismatch", {"reference": "rec_other"}, {}, TTL_EXACT + SECONDS, False, denied("attempt_expired")),
    ("expired-and-incomplete", {"status": "incomplete"}, {}, TTL_EXACT + SECONDS, False, denied("attempt_expired")),
    (
        "mismatch-and-incomplete",
        {"reference": "rec_other", "status": "incomplete"},
        {},
        SECONDS,
        False,
        denied("reference_mismatch"),
    ),
    (
        "mismatch-and-noFace",
        {"reference": "rec_other", "recognition": "noFace"},
        {},
        SECONDS,
        False,
        denied("reference_mismatch"),
    ),
    (
        "incomplete-and-noFace",
        {"status": "incomplete", "recognition": "noFace"},
        {},
        SECONDS,
        False,
        denied("session_not_complete"),
    ),
    (
        "noFace-and-deepfake",
        {"recognition": "noFace", "liveness": "deepfakeDetected"},
        {},
        SECONDS,
        False,
        denied("no_face"),
    ),
    (
        "newUser-and-deepfake",
        {"recognition": "newUser", "liveness": "deepfakeDetected"},
        {},
        SECONDS,
        False,
        denied("face_not_recognized"),
    ),
    (
        "deepfake-and-unknown-email",
        {"liveness": "deepfakeDetected", "email": "bob@example.com"},
        {},
        SECONDS,
        False,
        denied("deepfake_detected"),
    ),
    (
        "liveness-failed-and-unknown-email",
        {"liveness": "noFace", "email": "bob@example.com"},
        {},
        SECONDS,
        False,
        denied("liveness_failed"),
    ),
    (
        "unknown-email-and-not-confirmed",
        {"email": "bob@example.com", "conversation": "identity_not_confirmed"},
        {},
        SECONDS,
        True,
        denied("matched_face_has_no_local_user"),
    ),
    ("expired-and-not-confirmed", {"conversation": ABSENT}, {}, TTL_EXACT + SECONDS, True, denied("attempt_expired")),
    # the recovery lock: after matched_face_has_no_local_user, before identity_not_confirmed
    ("locked-user", {"email": LOCKED}, {}, SECONDS, False, denied("account_recovery_locked")),
    ("locked-user-confirmation-required", {"email": LOCKED}, {}, SECONDS, True, denied("account_recovery_locked")),
    (
        "locked-user-not-confirmed",
        {"email": LOCKED, "conversation": "identity_not_confirmed"},
        {},
        SECONDS,
        True,
        denied("account_recovery_locked"),
    ),
    (
        "locked-user-deepfake",
        {"email": LOCKED, "liveness": "deepfakeDetected"},
        {},
        SECONDS,
        False,
        denied("deepfake_detected"),
    ),
    ("locked-user-no-liveness", {"email": LOCKED, "liveness": "noFace"}, {}, SECONDS, False, denied("liveness_failed")),
    ("locked-user-expired", {"email": LOCKED}, {}, TTL_EXACT + SECONDS, False, denied("attempt_expired")),
    (
        "locked-user-face-unknown",
        {"email": LOCKED, "recognition": "newUser"},
        {},
        SECONDS,
        False,
        denied("face_not_recognized"),
    ),
    (
        "locked-user-other-reference",
        {"email": LOCKED, "reference": "rec_x"},
        {},
        SECONDS,
        False,
        denied("reference_mismatch"),
    ),
]


@pytest.mark.parametrize(
    ("overrides", "attempt_overrides", "elapsed", "confirm", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_decision_table(
    overrides: dict[str, Any],
    attempt_overrides: dict[str, Any],
    elapsed: timedelta,
    confirm: bool,
    expected: tuple[str, str] | None,
) -> None:
    decision = run(payload(**overrides), attempt(**attempt_overrides), elapsed, confirm)
    if expected is None:
        assert decision is None
    else:
        assert decision is not None
        assert (decision.outcome, decision.reason) == expected
        assert decision.reason in REASONS
        assert decision.approved is (expected[0] == APPROVED)


def test_every_reason_is_covered_by_the_table() -> None:
    reasons = {case[-1][1] for case in CASES if case[-1] is not None}
    assert reasons == set(REASONS)


def test_approved_decision_carries_the_match_and_the_node_outcomes() -> None:
    decision = run(payload(email="  ALICE@example.COM "))
    assert decision == Decision(
        outcome=APPROVED,
        reason="verified",
        session_status="complete",
        recognition="recognized",
        liveness="livenessDetected",
        conversation="identity_confirmed",
        matched_user_id="user-alice",
        recognized_email="alice@example.com",
        rules_version=RULES_VERSION,
    )


@pytest.mark.parametrize("liveness", ["deepfakeDetected", "noFace", ABSENT])
def test_denials_after_recognition_name_the_user_they_were_aimed_at(liveness: Any) -> None:
    decision = run(payload(liveness=liveness))
    assert decision is not None
    assert decision.outcome == DENIED
    assert decision.matched_user_id == "user-alice"


def test_the_lock_is_asked_only_about_a_matched_user_whose_checks_passed() -> None:
    asked: list[str] = []

    def lock(user_id: str) -> bool:
        asked.append(user_id)
        return False

    for overrides in ({"liveness": "deepfakeDetected"}, {"email": "bob@example.com"}, {"recognition": "noFace"}):
        run_locked = decide(
            parse_session(payload(**overrides)), attempt(), find_user, CREATED + SECONDS, Policy(), lock
        )
        assert run_locked is not None and not run_locked.approved
    assert asked == []
    approved = decide(parse_session(payload()), attempt(), find_user, CREATED + SECONDS, Policy(), lock)
    assert approved is not None and approved.approved and asked == ["user-alice"]


def test_denied_decision_records_outcomes() -> None:
    decision = run(payload(liveness="deepfakeDetected"))
    assert decision is not None
    assert decision.outcome == DENIED
    assert (decision.session_status, decision.recognition, decision.liveness) == (
        "complete",
        "recognized",
        "deepfakeDetected",
    )


def test_unknown_email_is_looked_up_normalised_and_not_matched() -> None:
    seen: list[str] = []

    def lookup(email: str) -> str | None:
        seen.append(email)
        return None

    session = parse_session(payload(email=" Bob@Example.ORG "))
    decision = decide(session, attempt(), lookup, CREATED + SECONDS, Policy())
    assert seen == ["bob@example.org"]
    assert decision is not None
    assert decision.reason == "matched_face_has_no_local_user"
    assert decision.matched_user_id is None
    assert decision.recognized_email == "bob@example.org"


def test_user_lookup_is_not_called_without_an_email() -> None:
    def lookup(email: str) -> str | None:
        raise AssertionError(f"looked up {email!r}")

    decision = decide(parse_session(payload(email=ABSENT)), attempt(), lookup, CREATED, Policy())
    assert decision is not None
    assert decision.reason == "matched_face_has_no_local_user"


def test_default_policy_does_not_require_confirmation() -> None:
    assert Policy().require_conversation_confirmation is False
    assert Policy().attempt_ttl == 1800
    session = parse_session(payload(conversation="identity_not_confirmed"))
    decision = decide(session, attempt(), find_user, CREATED, Policy())
    assert decision is not None
    assert decision.reason == "verified"


# --- node lookup through the attempt's stored flow ---------------------------------------------------------


def renamed_flow() -> list[dict[str, Any]]:
    """A valid flow whose recognition node is `face`, leading on `recognized` to `live_check`."""
    return [
        {"id": "begin", "type": "start", "outcome": "hello"},
        {
            "id": "hello",
            "type": "conversation",
            "prompt": "Say: hello",
            "outcomes": [{"id": "ok", "targetNodeId": "face", "condition": "any answer"}],
        },
        {
            "id": "face",
            "type": "recognition",
            "outcomes": {"recognized": "live_check", "newUser": "live_new", "noFace": "live_new"},
        },
        {
            "id": "live_check",
            "type": "liveness_detection",
            "outcomes": {"livenessDetected": "ask_email", "deepfakeDetected": "bye", "noFace": "bye"},
        },
        {
            "id": "ask_email",
            "type": "conversation",
            "prompt": "Say: your email please",
            "outcomes": [
                {"id": "email_ok", "targetNodeId": "bye", "condition": "gave the email"},
                {"id": "email_wrong", "targetNodeId": "bye", "condition": "did not"},
            ],
        },
        {
            "id": "live_new",
            "type": "liveness_detection",
            "outcomes": {"livenessDetected": "bye", "deepfakeDetected": "bye", "noFace": "bye"},
        },
        {
            "id": "bye",
            "type": "conversation",
            "prompt": "Say: bye",
            "outcomes": [{"id": "b", "targetNodeId": "fin"}],
            "doesNotRequireReply": True,
        },
        {"id": "fin", "type": "end"},
    ]


RENAMED_IDS = ("face", "live_check", "ask_email")


def test_renamed_flow_is_valid() -> None:
    validate_flow(renamed_flow())


@pytest.mark.parametrize(
    ("overrides", "flow", "confirm", "expected"),
    [
        pytest.param(
            {"ids": RENAMED_IDS, "conversation": "email_ok"},
            renamed_flow(),
            False,
            VERIFIED,
            id="renamed-ids-judged-by-flow",
        ),
        pytest.param(
            {"ids": RENAMED_IDS, "conversation": "email_ok"},
            None,
            False,
            denied("face_not_recognized"),
            id="renamed-ids-without-flow-use-fallback-ids",
        ),
        pytest.param(
            {}, renamed_flow(), False, denied("face_not_recognized"), id="fallback-ids-with-renamed-flow-not-found"
        ),
        pytest.param({}, None, False, VERIFIED, id="fallback-ids-without-flow"),
        pytest.param({}, [], False, VERIFIED, id="fallback-ids-with-empty-flow"),
        pytest.param({}, build_recovery_flow(), True, VERIFIED, id="default-flow-stored"),
        pytest.param(
            {"ids": RENAMED_IDS, "recognition": "noFace"},
            renamed_flow(),
            False,
            denied("no_face"),
            id="renamed-recognition-noFace",
        ),
        pytest.param(
            {"ids": RENAMED_IDS, "liveness": "deepfakeDetected"},
            renamed_flow(),
            False,
            denied("deepfake_detected"),
            id="renamed-liveness-deepfake",
        ),
        pytest.param(
            {"ids": RENAMED_IDS, "extra": (node("liveness_known", "deepfakeDetected"), node("live_new", "noFace"))},
            renamed_flow(),
            False,
            VERIFIED,
            id="only-the-liveness-after-recognized-counts",
        ),
        pytest.param(
            {"ids": RENAMED_IDS, "liveness": "deepfakeDetected", "extra": (node("live_new", "livenessDetected"),)},
            renamed_flow(),
            False,
            denied("deepfake_detected"),
            id="other-liveness-node-passing-does-not-help",
        ),
        pytest.param(
            {"ids": RENAMED_IDS, "extra": (node("recognition", "noFace"),)},
            renamed_flow(),
            False,
            VERIFIED,
            id="a-node-named-recognition-is-ignored-when-flow-renames-it",
        ),
        pytest.param(
            {"ids": RENAMED_IDS, "conversation": "email_ok"},
            renamed_flow(),
            True,
            VERIFIED,
            id="renamed-confirming-outcome-is-its-first",
        ),
        pytest.param(
            {"ids": RENAMED_IDS, "conversation": "email_wrong"},
            renamed_flow(),
            True,
            denied("identity_not_confirmed"),
            id="renamed-second-outcome-does-not-confirm",
        ),
        pytest.param(
            {"ids": RENAMED_IDS, "conversation": "identity_confirmed"},
            renamed_flow(),
            True,
            denied("identity_not_confirmed"),
            id="default-confirming-id-does-not-confirm-renamed-flow",
        ),
    ],
)
def test_nodes_are_found_through_the_stored_flow(
    overrides: dict[str, Any], flow: Any, confirm: bool, expected: tuple[str, str]
) -> None:
    decision = run(payload(**overrides), attempt(flow=flow), confirm=confirm)
    assert decision is not None
    assert (decision.outcome, decision.reason) == expected


def test_renamed_flow_decision_reports_the_renamed_nodes_outcomes() -> None:
    decision = run(payload(ids=RENAMED_IDS, conversation="email_ok"), attempt(flow=renamed_flow()))
    assert decision is not None
    assert (decision.recognition, decision.liveness, decision.conversation) == (
        "recognized",
        "livenessDetected",
        "email_ok",
    )
    assert decision.matched_user_id == "user-alice"


# --- captured payloads ---------------------------------------------------------------------------------------


def load(name: str) -> dict[str, Any]:
    data = json.loads((PAYLOADS / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_captured_complete_recognized_session_is_approved() -> None:
    data = load("session_complete_recognized.json")
    reference = data["session"]["clientReferenceId"]
    att = attempt(reference=reference, flow=build_recovery_flow())
    decision = decide(parse_session(data), att, find_user, CREATED + timedelta(minutes=3), Policy())
    assert decision is not None
    assert (decision.outcome, decision.reason) == VERIFIED
    assert decision.matched_user_id == "user-alice"
    assert decision.recognized_email == "alice@example.com"
    strict = Policy(require_conversation_confirmation=True)
    assert decide(parse_session(data), att, find_user, CREATED, strict) == decision


def test_captured_complete_session_for_another_attempt_is_a_mismatch() -> None:
    data = load("session_complete_recognized.json")
    decision = decide(parse_session(data), attempt(reference="rec_other"), find_user, CREATED, Policy())
    assert decision is not None
    assert decision.reason == "reference_mismatch"


def test_captured_incomplete_session_is_denied() -> None:
    data = load("session_incomplete.json")
    att = attempt(reference=data["session"]["clientReferenceId"], flow=build_recovery_flow())
    decision = decide(parse_session(data), att, find_user, CREATED, Policy())
    assert decision is not None
    assert (decision.outcome, decision.reason, decision.session_status) == (
        DENIED,
        "session_not_complete",
        "incomplete",
    )
    assert (decision.recognition, decision.liveness, decision.conversation) == (None, None, None)


# --- expire(): the reconciler's verdict ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decided", "elapsed", "expected"),
    [
        pytest.param(False, TTL_EXACT - SECONDS, None, id="young"),
        pytest.param(False, TTL_EXACT, None, id="exactly-at-ttl"),
        pytest.param(False, TTL_EXACT + timedelta(microseconds=1), "attempt_expired", id="one-microsecond-past"),
        pytest.param(False, TTL_EXACT * 10, "attempt_expired", id="long-past"),
        pytest.param(True, TTL_EXACT * 10, None, id="already-decided"),
    ],
)
def test_expire(decided: bool, elapsed: timedelta, expected: str | None) -> None:
    att = attempt(decided=decided)
    decision = expire(att, CREATED + elapsed, Policy(attempt_ttl=TTL), session_status="inProgress")
    if expected is None:
        assert decision is None
    else:
        assert decision == Decision(DENIED, expected, session_status="inProgress")


def test_expire_honours_the_policy_ttl() -> None:
    assert expire(attempt(), CREATED + timedelta(seconds=61), Policy(attempt_ttl=60)) is not None
    assert expire(attempt(), CREATED + timedelta(seconds=60), Policy(attempt_ttl=60)) is None


# --- normalise_email ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice@example.com", "alice@example.com"),
        ("  Alice@Example.COM  ", "alice@example.com"),
        ("\tALICE@EXAMPLE.COM\n", "alice@example.com"),
        ("", None),
        ("   ", None),
        (None, None),
        (42, None),
        (b"alice@example.com", None),
        (["alice@example.com"], None),
    ],
)
def test_normalise_email(value: object, expected: str | None) -> None:
    assert normalise_email(value) == expected


# --- reported_emails: what the worker reads with the attempt instead of asking the lookup -------------------


def test_reported_emails_are_every_nodes_address_normalised() -> None:
    extra = (node("second_look", "recognized", {"email": " Carol@Example.NET"}), node("other", "x", {"email": 7}))
    session = parse_session(payload(email="Alice@Example.com ", extra=extra))
    assert reported_emails(session) == {"alice@example.com", "carol@example.net"}
    assert reported_emails(parse_session(payload(email=ABSENT))) == set()


@given(
    email=st.one_of(st.none(), st.text(max_size=40), st.emails(), st.sampled_from([" Alice@Example.com"])),
    other=st.one_of(st.none(), st.emails()),
)
def test_decide_looks_up_only_reported_addresses(email: str | None, other: str | None) -> None:
    extra = (node("elsewhere", "x", {"email": other}),) if other is not None else ()
    session = parse_session(payload(email=ABSENT if email is None else email, extra=extra))
    asked: list[str] = []

    def lookup(address: str) -> str | None:
        asked.append(address)
        return USERS.get(address)

    decide(session, attempt(), lookup, CREATED + SECONDS, Policy())
    assert set(asked) <= reported_emails(session)
    assert asked or not (email or "").strip()  # the property is not vacuous


# --- expiry judged by when the session finished, not by when we decide ------------------------------------------

LATE = TTL_EXACT * 3  # when we decide: long past the deadline, as after a backlog, a stall or an outage
IN_TIME = CREATED + TTL_EXACT - SECONDS
TOO_LATE = CREATED + TTL_EXACT + SECONDS


@pytest.mark.parametrize(
    ("event_at", "held", "vendor_finished", "expected"),
    [
        pytest.param(CREATED + 2 * SECONDS, None, ABSENT, VERIFIED, id="event-in-time-decided-late"),
        pytest.param(IN_TIME, None, ABSENT, VERIFIED, id="event-one-second-before-deadline"),
        pytest.param(CREATED + TTL_EXACT, None, ABSENT, VERIFIED, id="event-exactly-at-deadline"),
        pytest.param(TOO_LATE, None, ABSENT, denied("attempt_expired"), id="event-after-deadline"),
        pytest.param(None, None, ABSENT, denied("attempt_expired"), id="no-event-judged-when-we-look"),
        pytest.param(None, IN_TIME, ABSENT, VERIFIED, id="held-event-in-time-reconciler"),
        pytest.param(None, TOO_LATE, ABSENT, denied("attempt_expired"), id="held-event-late-reconciler"),
        # The latest status event held is the finish: an earlier one cannot vouch for a later finish.
        pytest.param(IN_TIME, TOO_LATE, ABSENT, denied("attempt_expired"), id="held-later-event-wins"),
        pytest.param(TOO_LATE, IN_TIME, ABSENT, denied("attempt_expired"), id="this-later-event-wins"),
        # A completion time the vendor reports beats every event.
        pytest.param(TOO_LATE, None, int(IN_TIME.timestamp() * 1000), VERIFIED, id="vendor-time-in-time"),
        pytest.param(IN_TIME, None, "2025-03-01T12:30:01Z", denied("attempt_expired"), id="vendor-time-late"),
        # Evidence from the future is no evidence: never later than the moment we decide.
        pytest.param(CREATED + LATE * 2, None, ABSENT, denied("attempt_expired"), id="future-event"),
    ],
)
def test_expiry_is_judged_by_the_finish(
    event_at: datetime | None, held: datetime | None, vendor_finished: Any, expected: tuple[str, str]
) -> None:
    data = payload()
    if vendor_finished is not ABSENT:
        data["session"]["completedAt"] = vendor_finished
    att = Attempt(id="att_1", created_at=CREATED, decided=False, client_reference_id=REF, last_event_at=held)
    decision = decide(parse_session(data), att, find_user, CREATED + LATE, Policy(attempt_ttl=TTL), event_at=event_at)
    assert decision is not None and (decision.outcome, decision.reason) == expected


def test_a_finish_in_time_is_judged_in_time_however_late_we_decide() -> None:
    att = attempt()
    for delay in (timedelta(0), TTL_EXACT, TTL_EXACT * 10, timedelta(days=30)):
        decision = decide(parse_session(payload()), att, find_user, IN_TIME + delay, Policy(TTL), event_at=IN_TIME)
        assert decision is not None and decision.approved, delay


# --- when the reconciler looks again ------------------------------------------------------------------------

BACKOFF = Backoff(base=timedelta(seconds=60), cap=timedelta(minutes=15), lead=timedelta(seconds=30))
DEADLINE = CREATED + TTL_EXACT


@pytest.mark.parametrize(
    ("looked", "checks", "expected"),
    [
        pytest.param(CREATED + timedelta(seconds=60), 1, CREATED + timedelta(seconds=120), id="first-wait"),
        pytest.param(CREATED + timedelta(seconds=120), 2, CREATED + timedelta(seconds=240), id="doubles"),
        pytest.param(CREATED + timedelta(seconds=300), 3, CREATED + timedelta(seconds=540), id="doubles-again"),
        pytest.param(CREATED + timedelta(seconds=600), 9, CREATED + timedelta(seconds=1500), id="capped"),
        pytest.param(CREATED + timedelta(seconds=1000), 9, DEADLINE - timedelta(seconds=30), id="capped-by-lead"),
        pytest.param(DEADLINE - timedelta(seconds=40), 1, DEADLINE - timedelta(seconds=30), id="look-before-deadline"),
        pytest.param(DEADLINE - timedelta(seconds=10), 1, DEADLINE + SECONDS, id="look-after-deadline"),
        pytest.param(DEADLINE + SECONDS, 5, DEADLINE + SECONDS + timedelta(minutes=15), id="past-deadline-capped"),
        pytest.param(DEADLINE + SECONDS, 10**6, DEADLINE + SECONDS + timedelta(minutes=15), id="huge-count"),
    ],
)
def test_next_check(looked: datetime, checks: int, expected: datetime) -> None:
    assert next_check(looked, checks, DEADLINE, BACKOFF) == expected


@given(looked=st.integers(min_value=0, max_value=TTL * 3), checks=st.integers(min_value=0, max_value=10**4))
def test_next_check_is_always_later_and_bounded(looked: int, checks: int) -> None:
    now = CREATED + timedelta(seconds=looked)
    later = next_check(now, checks, DEADLINE, BACKOFF)
    assert now < later <= now + BACKOFF.cap
    if now < DEADLINE - BACKOFF.lead:
        assert later <= DEADLINE - BACKOFF.lead  # never skips the look before the deadline
