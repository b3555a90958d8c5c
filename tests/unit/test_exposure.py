"""What the receiver shows, and to whom: metrics for operators only, browsers from listed origins only,
redirects that ignore Host, a cap on recoveries from everyone, dates outside the calendar refused,
CSV cells a spreadsheet would run quoted."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from adapters.db.attempts import create_attempt
from adapters.db.auditors import create_token
from config import Settings
from domain import rules
from receiver.app import create_app
from tests.conftest import app_database_url
from tests.fakes import FakeFaceSign, append_decision, make_services
from usecases.audit_formats import write_records

OUTSIDER = ("203.0.113.7", 40000)
LOOPBACK = ("127.0.0.1", 40000)


def client(tmp_path: Path, address: tuple[str, int] = OUTSIDER, **overrides: Any) -> TestClient:
    settings = Settings(database_url=app_database_url(tmp_path), **overrides)
    services = make_services(settings, facesign=FakeFaceSign())
    return TestClient(create_app(services), raise_server_exceptions=False, client=address)


# /metrics


def test_metrics_are_hidden_from_other_hosts(tmp_path: Path) -> None:
    answer = client(tmp_path).get("/metrics")
    assert answer.status_code == 404
    assert "facesign" not in answer.text


def test_metrics_answer_loopback(tmp_path: Path) -> None:
    answer = client(tmp_path, LOOPBACK).get("/metrics")
    assert answer.status_code == 200 and "facesign_decisions" in answer.text


def test_metrics_answer_anyone_with_the_token(tmp_path: Path) -> None:
    web = client(tmp_path, metrics_token="m-token-123")
    assert web.get("/metrics", headers={"Authorization": "Bearer m-token-123"}).status_code == 200
    for header in ("Bearer m-token-12", "Bearer m-token-1234", "Basic m-token-123", "m-token-123", "Bearer "):
        assert web.get("/metrics", headers={"Authorization": header}).status_code == 404, header


def test_without_a_configured_token_no_bearer_opens_metrics(tmp_path: Path) -> None:
    assert client(tmp_path).get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


# Origins


OWN = "http://127.0.0.1:8000"


def test_a_cross_site_text_plain_post_cannot_start_a_recovery(tmp_path: Path) -> None:
    web = client(tmp_path)
    headers = {"Origin": "https://evil.example", "Content-Type": "text/plain"}
    answer = web.post("/recoveries", content=b'{"type":"forgot_password"}', headers=headers)
    assert answer.status_code == 403
    # Even without the Origin check, the form's type alone is refused.
    assert web.post("/recoveries", content=b"{}", headers={"Content-Type": "text/plain"}).status_code == 415
    cross_site_json = web.post("/recoveries", json={}, headers={"Origin": "https://evil.example"})
    assert cross_site_json.status_code == 403
    assert web.post("/reset-tokens/redeem", json={"token": "x"}, headers={"Origin": "null"}).status_code == 403


@pytest.mark.parametrize("origin", [OWN, "http://localhost:8000"])
def test_this_services_own_pages_may_post(tmp_path: Path, origin: str) -> None:
    answer = client(tmp_path).post("/recoveries", json={}, headers={"Origin": origin})
    assert answer.status_code == 201, answer.text


def test_listed_origins_get_cors_answers_and_others_do_not(tmp_path: Path) -> None:
    web = client(tmp_path, allowed_origins=("https://app.example.com",))
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
    allowed = web.options("/recoveries", headers={**preflight, "Access-Control-Request-Headers": "content-type"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    posted = web.post("/recoveries", json={}, headers={"Origin": "https://app.example.com"})
    assert posted.status_code == 201 and posted.headers["access-control-allow-origin"] == "https://app.example.com"
    refused = web.options("/recoveries", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in refused.headers


# Redirects and rate limits


def test_redirects_never_follow_the_host_header(tmp_path: Path) -> None:
    web = client(tmp_path)
    answer = web.get("/recover/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert answer.status_code in (301, 302, 307, 308)
    assert answer.headers["location"] == "/recover"
    assert web.get("/healthz/", headers={"Host": "evil.example"}, follow_redirects=False).status_code == 404


def test_recoveries_are_capped_for_all_clients_together(tmp_path: Path) -> None:
    settings = Settings(database_url=app_database_url(tmp_path), recoveries_per_minute_total=3)
    app = create_app(make_services(settings, facesign=FakeFaceSign()))
    answers = [TestClient(app, client=(f"198.51.100.{n}", 40000)).post("/recoveries", json={}) for n in range(1, 6)]
    assert [a.status_code for a in answers] == [201, 201, 201, 429, 429]
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 60


def test_behind_a_listed_proxy_each_client_has_its_own_limit(tmp_path: Path) -> None:
    """A proxy on another host, listed in FORWARDED_ALLOW_IPS: uvicorn (as `serve` runs it, with
    proxy_headers) takes each client's address from X-Forwarded-For, so one client's limit is not
    everyone's. The same header from an unlisted host is ignored."""
    settings = Settings(
        database_url=app_database_url(tmp_path), recoveries_per_minute=1, forwarded_allow_ips="10.0.0.5"
    )
    app = ProxyHeadersMiddleware(
        create_app(make_services(settings, facesign=FakeFaceSign())), trusted_hosts=settings.forwarded_allow_ips
    )
    proxy = TestClient(app, client=("10.0.0.5", 40000))
    codes = [proxy.post("/recoveries", json={}, headers={"X-Forwarded-For": f"198.51.100.{n}"}) for n in (1, 2, 1)]
    assert [answer.status_code for answer in codes] == [201, 201, 429]
    stranger = TestClient(app, client=("10.0.0.6", 40000))
    codes = [stranger.post("/recoveries", json={}, headers={"X-Forwarded-For": f"198.51.100.{n}"}) for n in (3, 4)]
    assert [answer.status_code for answer in codes] == [201, 429]  # both are 10.0.0.6


# Dates and CSV


def auditor(tmp_path: Path, **row: Any) -> tuple[TestClient, dict[str, str]]:
    services = make_services(Settings(database_url=app_database_url(tmp_path)))
    now = datetime.now(UTC)
    with services.deps.db.transaction() as session:
        token = create_token(session, "ann", now)
        if row:
            create_attempt(session, "a1", "sess_a1", [], "https://x", now)
            append_decision(
                session,
                rules.Decision("denied", "no_face"),
                attempt_id="a1",
                session_id=row.get("session_id", "sess_a1"),
                client_reference_id=row.get("client_reference_id", "a1"),
                decided_at=now,
                event_id=row.get("event_id"),
                message_id=None,
            )
    web = TestClient(create_app(services), raise_server_exceptions=False)
    return web, {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("route", ["/audit/decisions", "/audit/panel"])
@pytest.mark.parametrize(
    "query",
    [
        "since=0001-01-01T00:00:00%2B01:00",
        "until=9999-12-31T23:59:59-01:00",
        "until=0001-01-01T00:00:00Z",
        "since=0001-01-01T00:00:00Z&until=0001-01-02T00:00:00Z",
        "since=9999-12-31T00:00:00Z",
    ],
)
def test_dates_at_the_ends_of_the_calendar_are_400_not_500(tmp_path: Path, route: str, query: str) -> None:
    web, headers = auditor(tmp_path)
    answer = web.get(f"{route}?{query}", headers=headers)
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 400:
        assert "error" in answer.json()


def test_the_year_one_date_of_the_report_is_400(tmp_path: Path) -> None:
    web, headers = auditor(tmp_path)
    for route in ("/audit/decisions", "/audit/panel"):
        answer = web.get(route, params={"since": "0001-01-01T00:00:00+01:00"}, headers=headers)
        assert answer.status_code == 400, route
    assert web.get("/audit/panel", params={"until": "0001-01-01T00:00:00Z"}, headers=headers).status_code == 400


@pytest.mark.parametrize("cell", ['=HYPERLINK("https://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_csv_cells_a_spreadsheet_would_run_are_quoted(cell: str) -> None:
    out = io.StringIO()
    write_records([{"id": 1, "sessionId": cell, "eventId": "evt_1"}], "csv", out)
    [row] = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))  # one row: a CR cannot start another
    assert row["sessionId"] == "'" + cell
    assert row["eventId"] == "evt_1"


def test_jsonl_stays_exact() -> None:
    out = io.StringIO()
    write_records([{"id": 1, "sessionId": "=HYPERLINK(1)"}], "jsonl", out)
    assert out.getvalue() == '{"id":1,"sessionId":"=HYPERLINK(1)"}\n'


def test_the_csv_export_quotes_a_formula_from_the_vendor(tmp_path: Path) -> None:
    web, headers = auditor(tmp_path, session_id='=HYPERLINK("https://evil.example")', event_id="@cmd")
    answer = web.get("/audit/decisions", headers={**headers, "Accept": "text/csv"})
    [row] = list(csv.DictReader(io.StringIO(answer.text)))
    assert row["sessionId"] == '\'=HYPERLINK("https://evil.example")' and row["eventId"] == "'@cmd"
    as_json = web.get("/audit/decisions", headers=headers).json()["items"][0]
    assert as_json["sessionId"] == '=HYPERLINK("https://evil.example")'  # the JSON keeps the value exact
