"""The dashboard's answers to what auditors ask, checked against the rows themselves; its checkpoint-based
chain status; its export; its style and CSP."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from adapters.db.models import AuditAccess
from bench.audit_rows import fill
from receiver.services import Services
from tests.conftest import app_database_url
from tests.unit.test_audit_api import audit_app, auth
from usecases.audit_verification import process_name, verify_full

RANGE = "since=2026-11-01&until=2026-11-15"  # 300 rows an hour apart from 2026-11-01T00:00Z


@pytest.fixture
def app(tmp_path: Path) -> tuple[TestClient, Services, str]:
    client, services, token = audit_app(app_database_url(tmp_path), rows=300)
    return client, services, token


def every_record(client: TestClient, token: str) -> list[dict[str, object]]:
    return client.get("/audit/decisions?limit=1000", headers=auth(token)).json()["items"]  # type: ignore[no-any-return]


def cell(html: str, element: str) -> str:
    found = re.search(rf'id="{element}">([^<]*)<', html)
    assert found, element
    return found.group(1)


def test_rates_users_and_timings_agree_with_the_rows(app: tuple[TestClient, Services, str]) -> None:
    client, _, token = app
    html = client.get(f"/audit/panel?{RANGE}", headers=auth(token)).text
    records = every_record(client, token)
    approved = sum(1 for r in records if r["outcome"] == "approved")
    assert cell(html, "total") == "300" and cell(html, "approval-rate") == f"{100 * approved / 300:.1f} %"
    # the bulk rows took 15 + (id * 37 % 240) seconds from start to decision: nearest-rank percentiles
    seconds = sorted(15 + int(str(r["id"])) * 37 % 240 for r in records)
    p50, p95 = seconds[math.ceil(0.5 * 300) - 1], seconds[math.ceil(0.95 * 300) - 1]
    shown = [cell(html, "p50"), cell(html, "p95")]
    assert shown == [f"{v} s" if v < 120 else f"{v // 60} min {v % 60} s" for v in (p50, p95)]
    users = Counter(str(r["matchedUserId"]) for r in records if r["matchedUserId"])
    top = sorted(users.items(), key=lambda item: (-item[1], item[0]))[:10]
    table = re.findall(r'<tr><td><code>([^<]+)</code></td><td class="num">(\d+)</td>', html.split('id="top-users"')[1])
    assert [(user, int(n)) for user, n in table] == top


def test_weeks_and_days_carry_approvals_and_denials_by_reason(app: tuple[TestClient, Services, str]) -> None:
    client, _, token = app
    html = client.get(f"/audit/panel?{RANGE}", headers=auth(token)).text
    week = html.split('id="per-week"')[1].split("</table>")[0]
    # 2026-11-01 is a Sunday: its week starts on Monday 2026-10-26
    assert 'data-start="2026-10-26"' in week and 'data-start="2026-11-02"' in week
    first_day = re.search(r'data-start="2026-11-01"><th scope="row">2026-11-01</th>(.*?)</tr>', html)
    assert first_day is not None
    numbers = re.findall(r'<td class="num">([^<]+)</td>', first_day.group(1))
    assert numbers[:3] == ["24", "4", "16.7 %"]  # ids 1-24: 5, 10, 15, 20 approved
    assert "deepfake_detected" in week.split("</thead>")[0]


def test_the_chain_panel_checks_only_new_rows_and_shows_the_last_full_verification(
    app: tuple[TestClient, Services, str],
) -> None:
    client, services, token = app
    html = client.get(f"/audit/panel?{RANGE}", headers=auth(token)).text
    assert "No checkpoint yet, so every row was checked: chain intact: 300 rows" in html
    assert "No full verification recorded yet" in html
    verify_full(services.deps.db, process_name("audit verify (cli:ann)"))
    fill(services.deps.db.engine, 3)
    html = client.get(f"/audit/panel?{RANGE}", headers=auth(token)).text
    assert "Rows after checkpoint 1 (row 300, full," in html and "3 new, chain intact: 303 rows" in html
    assert "Last full verification: " in html and "audit verify (cli:ann) on " in html
    assert "chain intact: 300 rows" in html.split('id="full-verification"')[1]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_the_export_streams_every_record_the_filters_match(app: tuple[TestClient, Services, str], fmt: str) -> None:
    client, services, token = app
    assert client.get(f"/audit/export?format={fmt}").status_code == 401
    response = client.get(f"/audit/export?format={fmt}&outcome=denied&{RANGE}", headers=auth(token))
    assert response.status_code == 200 and "attachment" in response.headers["content-disposition"]
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(response.text)))
    else:
        rows = [json.loads(line) for line in response.text.splitlines()]
    assert len(rows) == 240 and {row["outcome"] for row in rows} == {"denied"}
    assert [int(row["id"]) for row in rows] == sorted(int(row["id"]) for row in rows)
    with services.deps.db.reading() as session:
        entry = session.scalars(select(AuditAccess).where(AuditAccess.action == "export")).one()
    assert entry.auditor == "ann" and entry.filters["format"] == fmt and entry.filters["outcome"] == "denied"
    assert client.get("/audit/export?format=xml", headers=auth(token)).status_code == 400


def test_the_page_is_styled_like_the_recovery_page_with_nothing_from_elsewhere(
    app: tuple[TestClient, Services, str],
) -> None:
    client, _, token = app
    page = client.get("/audit")
    assert 'href="/recover/assets/page.css"' in page.text and 'href="/recover/assets/audit.css"' in page.text
    assert 'class="skip" href="#main"' in page.text  # keyboard users skip the header
    csp = page.headers["content-security-policy"]
    assert "style-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert client.get("/recover/assets/audit.css").headers["content-type"].startswith("text/css")
    for url in (f"/audit/panel?{RANGE}", "/audit/panel/decisions/5"):
        fragment = client.get(url, headers=auth(token)).text
        assert "style=" not in fragment and "<script" not in fragment  # the CSP would refuse them
        assert not re.search(r'(src|href)="(https?:)?//', fragment)
