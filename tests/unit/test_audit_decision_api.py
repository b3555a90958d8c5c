"""`GET /audit/decisions/{id}` and its dashboard fragment: one decision explained, and who opened it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text
from starlette.testclient import TestClient

from adapters.db.audit_log import RECORD_FIELDS
from adapters.db.auditors import create_token
from adapters.db.models import AuditAccess
from domain.rules import REASONS
from receiver.services import Services
from tests.conftest import app_database_url
from tests.integration.test_audit_tamper import tamper
from tests.unit.test_audit_api import audit_app, auth


@pytest.fixture
def app(tmp_path: Path) -> tuple[TestClient, Services, str]:
    return audit_app(app_database_url(tmp_path), rows=12)


def test_it_needs_an_auditor_token_and_404s_an_unknown_id(app: tuple[TestClient, Services, str]) -> None:
    client, _, token = app
    assert client.get("/audit/decisions/3").status_code == 401
    assert client.get("/audit/panel/decisions/3", headers=auth("fsa_wrong")).status_code == 401
    missing = client.get("/audit/decisions/999", headers=auth(token))
    assert missing.status_code == 404 and missing.json() == {"error": "no decision with that id"}
    assert client.get("/audit/decisions/0", headers=auth(token)).status_code == 404
    assert client.get("/audit/decisions/abc", headers=auth(token)).status_code == 404


def test_a_deepfake_denial_explained(app: tuple[TestClient, Services, str]) -> None:
    client, _, token = app
    body = client.get("/audit/decisions/8", headers=auth(token)).json()  # id % 5 == 3: deepfake_detected
    listed = client.get("/audit/decisions?attemptId=att_8", headers=auth(token)).json()["items"][0]
    assert body["decision"] == listed and list(body["decision"]) == list(RECORD_FIELDS)  # every field, same names
    assert body["rule"]["reason"] == "deepfake_detected" and body["rule"]["position"] == 6  # after no_face etc.
    assert body["rule"]["of"] == len(REASONS)
    assert "deepfake" in body["rule"]["condition"] and body["rule"]["readsNode"] == "liveness_detection"
    steps = {step["nodeId"]: step for step in body["path"]["steps"]}
    assert steps["liveness_known"]["outcome"] == "deepfakeDetected" and steps["liveness_known"]["decided"]
    assert steps["recognition"]["outcome"] == "recognized" and not steps["recognition"]["decided"]
    assert "liveness_new" not in steps and body["path"]["complete"]
    chain = body["chain"]
    assert chain["verifies"] and chain["linksToPrevious"] and chain["hashMatchesContent"] and chain["nextRowLinks"]
    assert chain["previousRowHash"] == client.get("/audit/decisions/7", headers=auth(token)).json()["decision"]["hash"]
    assert 15 <= body["secondsToDecision"] <= 255
    assert "@" not in json.dumps(body)  # no email anywhere, nor any image


def test_the_newest_row_has_no_next_link_yet_and_a_tampered_row_does_not_verify(
    app: tuple[TestClient, Services, str],
) -> None:
    client, services, token = app
    assert client.get("/audit/decisions/12", headers=auth(token)).json()["chain"]["nextRowLinks"] is None
    tamper(services.deps.db.engine, lambda c: c.execute(text("UPDATE decisions SET reason = 'verified' WHERE id = 4")))
    chain = client.get("/audit/decisions/4", headers=auth(token)).json()["chain"]
    assert not chain["verifies"] and not chain["hashMatchesContent"] and chain["linksToPrevious"]
    html = client.get("/audit/panel/decisions/4", headers=auth(token)).text
    assert "This row does NOT verify" in html


def test_the_access_log_records_who_opened_which_decision(app: tuple[TestClient, Services, str]) -> None:
    client, services, ann = app
    with services.deps.db.transaction() as session:
        bob = create_token(session, "bob", datetime.now(UTC))
    assert client.get("/audit/decisions/3", headers=auth(ann)).status_code == 200
    assert client.get("/audit/panel/decisions/3", headers=auth(bob)).status_code == 200
    assert client.get("/audit/decisions/5", headers=auth(bob)).status_code == 200
    assert client.get("/audit/decisions/77", headers=auth(ann)).status_code == 404  # a probe is recorded too
    with services.deps.db.reading() as session:
        entries = session.execute(select(AuditAccess.auditor, AuditAccess.action, AuditAccess.decision_id)).all()
    assert sorted(entries) == [
        ("ann", "decision", 3),
        ("ann", "decision", 77),
        ("bob", "decision", 3),
        ("bob", "decision", 5),
    ]
    # the page of decision 3 lists both of its readers, newest first, including this very read
    log = client.get("/audit/decisions/3", headers=auth(ann)).json()["accessLog"]
    assert [entry["auditor"] for entry in log] == ["ann", "bob", "ann"]
    assert [entry["auditor"] for entry in client.get("/audit/decisions/5", headers=auth(ann)).json()["accessLog"]] == [
        "ann",
        "bob",
    ]


def test_the_fragment_shows_the_path_the_rule_and_the_chain(app: tuple[TestClient, Services, str]) -> None:
    client, _, token = app
    html = client.get("/audit/panel/decisions/10", headers=auth(token)).text  # id % 5 == 0: approved
    assert "Decision 10: approved, verified" in html
    assert 'class="decided" data-reason="verified"' in html
    assert "recognition (recognized) → liveness_known (livenessDetected)" in html
    assert 'class="taken">recognized → liveness_known' in html
    assert "This row verifies" in html and "style=" not in html and "<script" not in html
