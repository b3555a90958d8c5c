"""`GET /audit/decisions`: auditor auth, filter validation, the cursor, CSV, the access log."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from adapters.db.audit_log import RECORD_FIELDS
from adapters.db.auditors import create_token, revoke_token
from adapters.db.models import AuditAccess, AuditorToken
from config import Settings
from domain.tokens import token_hash
from receiver.app import create_app
from receiver.services import Services
from tests.conftest import app_database_url
from tests.fakes import make_services
from tests.integration.test_audit_rows import fill


def audit_app(database_url: str, rows: int = 0) -> tuple[TestClient, Services, str]:
    """The real app on a migrated database with `rows` decisions and one auditor; returns the token too."""
    services = make_services(Settings(database_url=database_url))
    if rows:
        fill(services.deps.db.engine, rows, step=timedelta(hours=1))
    with services.deps.db.transaction() as session:
        token = create_token(session, "ann", datetime.now(UTC))
    return TestClient(create_app(services), raise_server_exceptions=False), services, token


@pytest.fixture
def app(tmp_path: Path) -> tuple[TestClient, Services, str]:
    return audit_app(app_database_url(tmp_path), rows=30)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_default_page_has_every_field_oldest_first(app: tuple[TestClient, Services, str]) -> None:
    client, _, token = app
    response = client.get("/audit/decisions", headers=auth(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next"] is None
    assert [item["id"] for item in body["items"]] == list(range(1, 31))
    assert list(body["items"][0]) == list(RECORD_FIELDS)
    assert body["items"][0]["decidedAt"] == "2026-11-01T00:00:00.000000Z"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer fsa_not-a-token"},
        {"Authorization": "Bearer not-even-prefixed"},
        {"Authorization": "Basic YW5uOnB3"},
    ],
    ids=["missing", "empty", "wrong", "unprefixed", "basic"],
)
def test_401_without_a_valid_token(app: tuple[TestClient, Services, str], headers: dict[str, str]) -> None:
    client, services, _ = app
    response = client.get("/audit/decisions", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "items" not in response.json()
    # a bad token with a bad filter is still 401: nothing is said to strangers about the query
    assert client.get("/audit/decisions?limit=0", headers=headers).status_code == 401
    with services.deps.db.reading() as session:
        assert session.scalars(select(AuditAccess)).all() == []


def test_a_revoked_token_is_refused_at_once(app: tuple[TestClient, Services, str]) -> None:
    client, services, token = app
    assert client.get("/audit/decisions", headers=auth(token)).status_code == 200
    with services.deps.db.transaction() as session:
        revoke_token(session, "ann", datetime.now(UTC))
    assert client.get("/audit/decisions", headers=auth(token)).status_code == 401


def test_only_the_token_hash_is_stored(app: tuple[TestClient, Services, str]) -> None:
    _, services, token = app
    with services.deps.db.reading() as session:
        [row] = session.scalars(select(AuditorToken)).all()
    assert row.token_hash == token_hash(token) and token not in row.token_hash


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("since=yesterday", "since"),
        ("until=2026-13-01", "until"),
        ("since=2026-11-02&until=2026-11-01", "since must be earlier"),
        ("outcome=maybe", "outcome"),
        ("reason=because", "reason"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=-5", "limit"),
        ("cursor=!!!", "cursor"),
        ("cursor=eyJ4IjoxfQ", "cursor"),
        ("sessionId=" + "x" * 200, "sessionId"),
        ("sessionId=sess%00", "sessionId"),
        ("attemptId=%00", "attemptId"),
        ("colour=blue", "unknown parameter 'colour'"),
    ],
)
def test_400_names_the_bad_filter(app: tuple[TestClient, Services, str], query: str, names: str) -> None:
    client, _, token = app
    response = client.get(f"/audit/decisions?{query}", headers=auth(token))
    assert response.status_code == 400
    assert names in response.json()["error"]


def test_every_filter(app: tuple[TestClient, Services, str]) -> None:
    client, _, token = app

    def ids(query: str) -> list[int]:
        response = client.get(f"/audit/decisions?{query}", headers=auth(token))
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    # row n was decided at START + (n - 1) hours; its reason cycles with n % 5 (see test_audit_rows)
    assert ids("since=2026-11-01T05:00:00Z") == list(range(6, 31))
    assert ids("until=2026-11-01T03:00:00%2B00:00") == [1, 2, 3]
    assert ids("since=2026-11-01T06:00:00%2B01:00&until=2026-11-01T08:00:00") == [6, 7, 8]
    assert ids("outcome=approved") == [5, 10, 15, 20, 25, 30]
    assert ids("outcome=denied&reason=face_not_recognized") == [1, 6, 11, 16, 21, 26]
    assert ids("outcome=approved&reason=face_not_recognized") == []
    assert ids("sessionId=sess_7") == [7]
    assert ids("attemptId=att_9") == [9]
    assert ids("since=2026-11-01&until=2026-11-02&limit=2") == [1, 2]


def test_the_cursor_walks_every_row_once(app: tuple[TestClient, Services, str]) -> None:
    client, _, token = app
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        query = "outcome=denied&limit=7" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(f"/audit/decisions?{query}", headers=auth(token)).json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
        assert len(body["items"]) == 7
    assert seen == [n for n in range(1, 31) if n % 5] and pages == 4
    assert "=" not in (cursor or "")


def test_a_cursor_is_opaque_and_bound_to_its_filters(app: tuple[TestClient, Services, str]) -> None:
    client, _, token = app
    cursor = client.get("/audit/decisions?outcome=denied&limit=3", headers=auth(token)).json()["next"]
    assert cursor and "denied" not in cursor
    other = client.get(f"/audit/decisions?outcome=approved&cursor={cursor}", headers=auth(token))
    assert other.status_code == 400 and "different filters" in other.json()["error"]
    forged = base64.urlsafe_b64encode(json.dumps({"after": 2, "f": "0" * 16}).encode()).decode().rstrip("=")
    assert client.get(f"/audit/decisions?cursor={forged}", headers=auth(token)).status_code == 400
    # the limit is not part of the query's identity: a client may change page size mid-walk
    assert (
        client.get(f"/audit/decisions?outcome=denied&limit=50&cursor={cursor}", headers=auth(token)).status_code == 200
    )


def test_csv_has_the_same_field_names(app: tuple[TestClient, Services, str]) -> None:
    client, _, token = app
    json_items = client.get("/audit/decisions?limit=4", headers=auth(token)).json()["items"]
    response = client.get("/audit/decisions?limit=4", headers={**auth(token), "Accept": "text/csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert response.text.splitlines()[0] == ",".join(RECORD_FIELDS)
    assert [int(row["id"]) for row in rows] == [1, 2, 3, 4]
    assert rows[0]["hash"] == json_items[0]["hash"] and rows[0]["conversation"] == ""
    following = response.headers["x-next-cursor"]
    rest = client.get(f"/audit/decisions?cursor={following}", headers=auth(token)).json()["items"]
    assert rest[0]["id"] == 5


def test_every_query_is_recorded_with_who_and_which_filters(app: tuple[TestClient, Services, str]) -> None:
    client, services, token = app
    before = datetime.now(UTC)
    client.get("/audit/decisions?outcome=denied&reason=no_face&limit=5", headers=auth(token))
    client.get("/audit/decisions", headers={**auth(token), "Accept": "text/csv"})
    with services.deps.db.reading() as session:
        entries = session.scalars(select(AuditAccess).order_by(AuditAccess.id)).all()
    assert [(e.auditor, e.action) for e in entries] == [("ann", "decisions"), ("ann", "decisions")]
    first: dict[str, Any] = entries[0].filters
    assert first == {"outcome": "denied", "reason": "no_face", "limit": 5, "format": "json"}
    assert entries[1].filters == {"limit": 100, "format": "csv"}
    at = entries[0].at if entries[0].at.tzinfo else entries[0].at.replace(tzinfo=UTC)
    assert before - timedelta(seconds=1) <= at <= datetime.now(UTC)


def test_a_failed_auth_or_bad_filter_reads_nothing_and_records_nothing(app: tuple[TestClient, Services, str]) -> None:
    client, services, token = app
    assert client.get("/audit/decisions?limit=0", headers=auth(token)).status_code == 400
    with services.deps.db.reading() as session:
        assert session.scalars(select(AuditAccess)).all() == []


def test_an_empty_log_answers_an_empty_page(tmp_path: Path) -> None:
    client, _, token = audit_app(app_database_url(tmp_path))
    assert client.get("/audit/decisions", headers=auth(token)).json() == {"items": [], "next": None}
