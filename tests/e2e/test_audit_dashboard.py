"""The auditor's dashboard in headless Chromium against `serve`: token once, chart, filters, chain status.

Skipped where /usr/bin/chromium or Playwright is missing; a failure instead with REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.db.engine import make_engine
from tests.conftest import REQUIRE_SERVICES, free_port
from tests.e2e.conftest import Processes, base_env, wait_http
from tests.integration.test_audit_rows import fill

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = None
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install chromium)"
    elif importlib.util.find_spec("playwright") is None:
        reason = "the playwright package is not installed"
    if reason:
        if REQUIRE_SERVICES:
            pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def dashboard(processes: Processes, tmp_path: Path) -> Iterator[dict[str, Any]]:
    port = free_port()
    url = f"sqlite:///{tmp_path}/dash.db"
    env = base_env(
        DATABASE_URL=url,
        SANDBOX_PORT=str(free_port()),
        MAIL_BACKEND="file",
        MAIL_DIR=str(tmp_path),
        FACESIGN_SANDBOX="1",
    )
    assert processes.run(env, "db", "upgrade").returncode == 0
    # 96 decisions an hour apart ending now: the last four days, so "last week" holds all of them.
    now = datetime.now(UTC).replace(microsecond=0)
    engine = make_engine(url)
    fill(engine, 96, start=now - timedelta(hours=95), step=timedelta(hours=1))
    engine.dispose()
    created = processes.run(env, "auditor-token", "create", "ann")
    assert created.returncode == 0, created.stderr
    processes.start("serve", env, "serve", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/healthz", procs=processes)
    yield {"base": base, "token": created.stdout.strip(), "env": env, "processes": processes}


def test_an_auditor_opens_the_dashboard_and_filters_last_weeks_denials(
    browser: Any,
    dashboard: dict[str, Any],
) -> None:
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    console: list[str] = []
    requests: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.on("request", lambda request: requests.append(request.url))
    base, token = dashboard["base"], dashboard["token"]

    page.goto(f"{base}/audit")
    assert page.locator("h1").inner_text() == "Decision log"
    assert page.locator("#panel").inner_text() == ""

    page.fill("#token", "fsa_not-the-token")
    page.click("#login button")
    page.locator("#message").get_by_text("not accepted").wait_for()
    assert page.locator("#login").is_visible()

    page.fill("#token", token)
    page.click("#login button")
    status = page.locator("#chain-status")
    status.wait_for()
    assert status.inner_text().startswith("chain intact: 96 rows")
    assert page.locator("#decisions-chart rect.bar").count() >= 4
    assert page.locator("#token").input_value() == ""  # not left lying in the form

    today = datetime.now(UTC).date()
    page.fill("input[name=since]", (today - timedelta(days=7)).isoformat())
    page.fill("input[name=until]", (today + timedelta(days=1)).isoformat())
    page.select_option("select[name=outcome]", "denied")
    page.click("#filters button[type=submit]")
    # 96 minus the 19 approvals (ids divisible by 5); the table shows the latest 50 of them
    page.locator("#latest h2").filter(has_text="(50 of 77 matching)").wait_for()
    outcomes = page.locator("#decisions tbody tr").evaluate_all("rows => rows.map(r => r.dataset.outcome)")
    assert len(outcomes) == 50 and set(outcomes) == {"denied"}
    assert page.locator('#totals tr[data-outcome="approved"]').count() == 0

    kept = page.evaluate(
        "() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie + location.href"
    )
    assert token not in kept
    assert all(url.startswith(base) for url in requests), [u for u in requests if not u.startswith(base)]

    page.click("#logout")
    assert page.locator("#panel").inner_text() == "" and page.locator("#login").is_visible()
    context.close()
    assert [line for line in console if "Content Security Policy" in line or "Refused to" in line] == []
