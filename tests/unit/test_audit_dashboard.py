"""`GET /audit` and its data fragment `GET /audit/panel`: auth, filters, the SVG chart, the chain's status."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from starlette.testclient import TestClient

from adapters.db.models import AuditAccess
from receiver.audit_chart import render_chart
from receiver.services import Services
from tests.conftest import app_database_url
from tests.integration.test_audit_tamper import tamper
from tests.unit.test_audit_api import audit_app, auth

RANGE = "since=2026-11-01&until=2026-11-03"  # 30 hourly rows from 2026-11-01T00:00Z: 24 on the 1st, 6 on the 2nd


@pytest.fixture
def app(tmp_path: Path) -> tuple[TestClient, Services, str]:
    return audit_app(app_database_url(tmp_path), rows=30)


def bars(html: str) -> list[tuple[str, str, int]]:
    return [
        (day, reason, int(n))
        for day, reason, n in re.findall(r'data-day="([^"]+)" data-reason="([^"]+)" data-count="(\d+)"', html)
    ]


def test_the_page_is_a_shell_without_data_or_outside_assets(app: tuple[TestClient, Services, str]) -> None:
    client, _, _ = app
    response = client.get("/audit")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert 'id="token"' in page and 'type="password"' in page
    assert "sess_1" not in page and "<svg" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing from a CDN: the page works offline
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    script = client.get("/audit/dashboard.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert not re.search(r"localStorage|sessionStorage|document\.cookie|indexedDB", script.text)
    assert "/audit/panel" in script.text


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer fsa_wrong"}], ids=["missing", "wrong"])
def test_the_panel_needs_an_auditor_token(app: tuple[TestClient, Services, str], headers: dict[str, str]) -> None:
    client, _, _ = app
    response = client.get(f"/audit/panel?{RANGE}", headers=headers)
    assert response.status_code == 401 and "sess_" not in response.text


def test_the_panel_charts_counts_by_day_and_reason(app: tuple[TestClient, Services, str]) -> None:
    client, services, token = app
    response = client.get(f"/audit/panel?{RANGE}", headers=auth(token))
    assert response.status_code == 200, response.text
    html = response.text
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in html and 'id="decisions-chart"' in html
    per_day: Counter[str] = Counter()
    for day, _, n in bars(html):
        per_day[day] += n
    assert per_day == {"2026-11-01": 24, "2026-11-02": 6}
    assert ("2026-11-01", "verified", 4) in bars(html)  # ids 5, 10, 15, 20 on the first day
    assert 'data-outcome="approved" data-reason="verified"' in html
    assert "Latest decisions (30 of 30 matching)" in html
    assert html.index('href="#decision=30"') < html.index('href="#decision=29"')  # newest first, each linked
    assert "chain intact: 30 rows" in html and 'class="status intact"' in html
    with services.deps.db.reading() as session:
        [entry] = session.scalars(select(AuditAccess)).all()
    assert (entry.auditor, entry.action) == ("ann", "dashboard")
    assert entry.filters["since"].startswith("2026-11-01T00:00:00")


def test_filters_narrow_the_chart_and_the_table(app: tuple[TestClient, Services, str]) -> None:
    client, _, token = app
    html = client.get(f"/audit/panel?{RANGE}&outcome=denied", headers=auth(token)).text
    assert "(24 of 24 matching)" in html
    assert 'data-outcome="approved"' not in html
    assert sum(n for _, _, n in bars(html)) == 24
    html = client.get(f"/audit/panel?{RANGE}&reason=no_face", headers=auth(token)).text
    assert {reason for _, reason, _ in bars(html)} == {"no_face"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("outcome=maybe", "outcome"),
        ("since=2020-01-01&until=2026-01-01", "at most 366 days"),
        ("since=soon", "since"),
    ],
)
def test_bad_filters_get_a_clear_400(app: tuple[TestClient, Services, str], query: str, message: str) -> None:
    client, _, token = app
    response = client.get(f"/audit/panel?{query}", headers=auth(token))
    assert response.status_code == 400 and message in response.json()["error"]


def test_the_default_window_is_the_last_two_weeks(tmp_path: Path) -> None:
    client, _, token = audit_app(app_database_url(tmp_path))
    html = client.get("/audit/panel", headers=auth(token)).text
    today = datetime.now(UTC).date()
    assert f"{(today - timedelta(days=13)).isoformat()} to {today.isoformat()}" in html
    assert "chain intact: 0 rows" in html and "(0 of 0 matching)" in html


def test_a_tampered_log_shows_as_broken(app: tuple[TestClient, Services, str]) -> None:
    client, services, token = app
    tamper(
        services.deps.db.engine,
        lambda c: c.execute(text("UPDATE decisions SET reason = 'verified', outcome = 'approved' WHERE id = 7")),
    )
    html = client.get(f"/audit/panel?{RANGE}", headers=auth(token)).text
    assert 'class="status broken"' in html and "chain broken at row 7" in html


def test_the_chart_escapes_what_it_is_given() -> None:
    svg = render_chart(Counter({(date(2026, 1, 1), "denied", "<script>"): 2}), [date(2026, 1, 1)])
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    empty = render_chart(Counter(), [date(2026, 1, 1), date(2026, 1, 2)])
    assert "<rect" not in empty and empty.endswith("</svg>")
