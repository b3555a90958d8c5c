"""parse_session: the fetched session, read defensively whatever the API hands back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.report import COMPLETE, UNSUCCESSFUL, NodeReport, ReportError, SessionReport, parse_session
from domain.rules import REASONS, Attempt, Policy, decide

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads"


def session(**fields: Any) -> dict[str, Any]:
    return {"session": {"id": "sess_1", "status": "complete", **fields}}


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"session": "sess_1"}, id="session-is-a-string"),
        pytest.param({"session": ["sess_1"]}, id="session-is-a-list"),
        pytest.param({"session": None}, id="session-is-null"),
        pytest.param({"session": 7}, id="session-is-a-number"),
        pytest.param({"session": {"status": "complete"}}, id="missing-id"),
        pytest.param({"session": {"id": None, "status": "complete"}}, id="null-id"),
        pytest.param({"session": {"id": 123, "status": "complete"}}, id="numeric-id"),
        pytest.param({}, id="empty-object"),
        pytest.param({"clientSecret": {"url": "https://x"}}, id="only-client-secret"),
        pytest.param([], id="top-level-list"),
        pytest.param("sess_1", id="top-level-string"),
        pytest.param(None, id="top-level-null"),
    ],
)
def test_not_a_session_raises_report_error(payload: Any) -> None:
    with pytest.raises(ReportError):
        parse_session(payload)


def test_bare_session_object_is_accepted() -> None:
    parsed = parse_session({"id": "sess_9", "status": "inProgress", "clientReferenceId": "rec_1"})
    assert parsed == SessionReport(id="sess_9", status="inProgress", client_reference_id="rec_1", nodes={})


def test_full_answer_is_parsed() -> None:
    parsed = parse_session(
        session(
            clientReferenceId="rec_1",
            report={
                "nodeReports": [
                    {"nodeId": "recognition", "outcome": "recognized", "report": {"email": "a@example.com"}},
                    {"nodeId": "liveness_known", "outcome": "livenessDetected", "report": {"score": 0.9}},
                ]
            },
        )
    )
    assert parsed.id == "sess_1"
    assert parsed.status == COMPLETE
    assert parsed.client_reference_id == "rec_1"
    assert parsed.nodes == {
        "recognition": NodeReport("recognized", {"email": "a@example.com"}),
        "liveness_known": NodeReport("livenessDetected", {"score": 0.9}),
    }
    assert parsed.outcome("recognition") == "recognized"
    assert parsed.outcome("absent") is None
    assert parsed.outcome(None) is None
    assert parsed.finished and parsed.successful


@pytest.mark.parametrize(
    "report",
    [
        pytest.param(None, id="report-null"),
        pytest.param("done", id="report-string"),
        pytest.param([], id="report-list"),
        pytest.param({}, id="no-nodeReports"),
        pytest.param({"nodeReports": None}, id="nodeReports-null"),
        pytest.param({"nodeReports": {"nodeId": "recognition", "outcome": "recognized"}}, id="nodeReports-object"),
        pytest.param({"nodeReports": "recognition"}, id="nodeReports-string"),
        pytest.param({"nodeReports": 3}, id="nodeReports-number"),
    ],
)
def test_node_reports_not_a_list_give_no_nodes(report: Any) -> None:
    assert parse_session(session(report=report)).nodes == {}


def test_items_without_a_string_node_id_are_skipped() -> None:
    items = [
        {"outcome": "recognized"},
        {"nodeId": None, "outcome": "recognized"},
        {"nodeId": 5, "outcome": "recognized"},
        {"nodeId": ["recognition"], "outcome": "recognized"},
        "recognition",
        None,
        ["recognition", "recognized"],
        {"nodeId": "liveness_known", "outcome": "livenessDetected"},
    ]
    parsed = parse_session(session(report={"nodeReports": items}))
    assert list(parsed.nodes) == ["liveness_known"]


@pytest.mark.parametrize("outcome", [None, 1, 1.5, True, ["recognized"], {"id": "recognized"}])
def test_non_string_outcome_becomes_none(outcome: Any) -> None:
    parsed = parse_session(session(report={"nodeReports": [{"nodeId": "recognition", "outcome": outcome}]}))
    assert parsed.nodes["recognition"].outcome is None
    assert parsed.outcome("recognition") is None


def test_missing_outcome_becomes_none() -> None:
    parsed = parse_session(session(report={"nodeReports": [{"nodeId": "recognition"}]}))
    assert parsed.nodes["recognition"] == NodeReport(None, {})


@pytest.mark.parametrize("detail", [None, "alice@example.com", ["email"], 0])
def test_non_object_node_report_becomes_empty(detail: Any) -> None:
    parsed = parse_session(
        session(report={"nodeReports": [{"nodeId": "recognition", "outcome": "recognized", "report": detail}]})
    )
    assert parsed.nodes["recognition"].report == {}


def test_duplicate_node_ids_keep_the_first() -> None:
    items = [
        {"nodeId": "liveness_known", "outcome": "deepfakeDetected", "report": {"n": 1}},
        {"nodeId": "liveness_known", "outcome": "livenessDetected", "report": {"n": 2}},
        {"nodeId": "liveness_known", "outcome": "livenessDetected", "report": {"n": 3}},
    ]
    parsed = parse_session(session(report={"nodeReports": items}))
    assert parsed.nodes["liveness_known"] == NodeReport("deepfakeDetected", {"n": 1})


def test_duplicate_after_a_skipped_item_still_keeps_the_first_valid_one() -> None:
    items = [
        {"nodeId": 1, "outcome": "x"},
        {"nodeId": "recognition", "outcome": "noFace"},
        {"nodeId": "recognition", "outcome": "recognized"},
    ]
    assert parse_session(session(report={"nodeReports": items})).outcome("recognition") == "noFace"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param(None, "", id="null"),
        pytest.param(3, "", id="number"),
        pytest.param(["complete"], "", id="list"),
        pytest.param("inProgress", "inProgress", id="string"),
    ],
)
def test_status_is_a_string_or_empty(status: Any, expected: str) -> None:
    parsed = parse_session(session(status=status))
    assert parsed.status == expected


def test_missing_status_is_empty_and_unfinished() -> None:
    parsed = parse_session({"session": {"id": "sess_1"}})
    assert parsed.status == ""
    assert not parsed.finished


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        pytest.param("rec_1", "rec_1", id="string"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="null"),
        pytest.param(42, None, id="number"),
    ],
)
def test_client_reference_id(reference: Any, expected: str | None) -> None:
    assert parse_session(session(clientReferenceId=reference)).client_reference_id == expected


@pytest.mark.parametrize(
    ("status", "finished", "successful"),
    [
        ("complete", True, True),
        *[(status, True, False) for status in sorted(UNSUCCESSFUL)],
        ("created", False, False),
        ("inProgress", False, False),
        ("", False, False),
        ("weird", False, False),
        ("COMPLETE", False, False),
    ],
)
def test_status_sets(status: str, finished: bool, successful: bool) -> None:
    parsed = SessionReport(id="s", status=status, client_reference_id=None)
    assert (parsed.finished, parsed.successful) == (finished, successful)


def test_unsuccessful_set_is_the_spec_list() -> None:
    assert frozenset({"incomplete", "canceled", "cancelled", "expired", "failed", "abandoned"}) == UNSUCCESSFUL
    assert COMPLETE == "complete"


@pytest.mark.parametrize("name", ["session_complete_recognized.json", "session_incomplete.json"])
def test_captured_payloads_parse(name: str) -> None:
    data = json.loads((PAYLOADS / name).read_text(encoding="utf-8"))
    parsed = parse_session(data)
    assert parsed.id == data["session"]["id"]
    assert parsed.client_reference_id == data["session"]["clientReferenceId"]
    assert parsed.finished
    assert set(parsed.nodes) == {item["nodeId"] for item in data["session"]["report"]["nodeReports"]}


# --- adversarial input ----------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
node_ids = st.sampled_from(["recognition", "liveness_known", "confirm_identity", "liveness_new", "x"])
outcomes = (
    st.sampled_from(["recognized", "newUser", "noFace", "livenessDetected", "deepfakeDetected", "identity_confirmed"])
    | json_values
)
node_items = st.fixed_dictionaries(
    {},
    optional={
        "nodeId": node_ids | json_values,
        "outcome": outcomes,
        "report": st.fixed_dictionaries({}, optional={"email": st.sampled_from(["alice@example.com"]) | json_values})
        | json_values,
    },
)
sessions = st.fixed_dictionaries(
    {},
    optional={
        "id": st.just("sess_1") | json_values,
        "status": st.sampled_from(["complete", "incomplete", "inProgress", "failed"]) | json_values,
        "clientReferenceId": st.sampled_from(["rec_1", "rec_2", ""]) | json_values,
        "report": st.fixed_dictionaries({}, optional={"nodeReports": st.lists(node_items, max_size=6) | json_values})
        | json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(sessions.map(lambda s: {"session": s}), sessions, json_values))
def test_arbitrary_json_parses_or_raises_report_error_and_decides_safely(payload: Any) -> None:
    try:
        parsed = parse_session(payload)
    except ReportError:
        return
    assert isinstance(parsed.id, str)
    assert isinstance(parsed.status, str)
    assert parsed.client_reference_id is None or (
        isinstance(parsed.client_reference_id, str) and parsed.client_reference_id
    )
    for node_id, node in parsed.nodes.items():
        assert isinstance(node_id, str)
        assert node.outcome is None or isinstance(node.outcome, str)
    created = datetime(2025, 1, 1, tzinfo=UTC)
    attempt = Attempt(id="att_1", created_at=created, decided=False, client_reference_id="rec_1")
    decision = decide(parsed, attempt, {"alice@example.com": "u1"}.get, created, Policy())
    assert (decision is None) == (not parsed.finished)
    if decision is not None:
        assert decision.reason in REASONS
        assert decision.approved == (decision.reason == "verified")
