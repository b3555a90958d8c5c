"""The auditor's dashboard in headless Chromium against `serve`: token once, chart, filters, chain status.

Skipped where /usr/bin/chromium or Playwright is missing; a failure instead with REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.db.engine import make_engine
from domain.rules import REASONS
from tests.conftest import REQUIRE_SERVICES, free_port
from tests.e2e.conftest import Processes, base_env, wait_http
from tests.fakes import make_deps, seed_attempt
from tests.integration.test_audit_rows import fill
from usecases.decide import process_session_event

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


def sandbox_database(
    processes: Processes, path: Path, decisions: int, start: datetime, step: timedelta
) -> tuple[str, dict[str, str]]:
    """A migrated SQLite database holding `decisions` generated chained decisions from `start`, and the
    environment of a sandboxed `serve` on it."""
    url = f"sqlite:///{path}"
    env = base_env(
        DATABASE_URL=url,
        SANDBOX_PORT=str(free_port()),
        MAIL_BACKEND="file",
        MAIL_DIR=str(path.parent),
        FACESIGN_SANDBOX="1",
    )
    assert processes.run(env, "db", "upgrade").returncode == 0
    engine = make_engine(url)
    fill(engine, decisions, start=start, step=step)
    engine.dispose()
    return url, env


@pytest.fixture
def dashboard(processes: Processes, tmp_path: Path) -> Iterator[dict[str, Any]]:
    port = free_port()
    # 96 decisions an hour apart ending now: the last four days, so "last week" holds all of them.
    now = datetime.now(UTC).replace(microsecond=0)
    url, env = sandbox_database(processes, tmp_path / "dash.db", 96, now - timedelta(hours=95), timedelta(hours=1))
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
    assert "chain intact: 96 rows" in status.inner_text()  # no checkpoint yet: every row checked
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


@pytest.fixture
def explained(processes: Processes, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """200 generated decisions over the last two weeks, a full verification, then two real ones made by the
    decision path itself: an approval and a deepfake."""
    port = free_port()
    now = datetime.now(UTC).replace(microsecond=0)
    url, env = sandbox_database(
        processes, tmp_path / "explained.db", 200, now - timedelta(days=13), timedelta(minutes=90)
    )
    verified = processes.run(env, "audit", "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("200 rows, chain intact"), verified.stderr
    deps, fake = make_deps(url, str(tmp_path / "mail"))
    approved = seed_attempt(deps, fake, "real_ok", email="ada@example.com")
    deepfake = seed_attempt(deps, fake, "real_fake", email="bob@example.com", liveness="deepfakeDetected")
    assert process_session_event(deps, approved, event_id="evt_ok").status == "approved"
    assert process_session_event(deps, deepfake, event_id="evt_fake").status == "denied"
    deps.db.dispose()
    created = processes.run(env, "auditor-token", "create", "ann")
    assert created.returncode == 0, created.stderr
    processes.start("serve", env, "serve", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/healthz", procs=processes)
    shots = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    yield {"base": base, "token": created.stdout.strip(), "shots": shots}


def open_decision(page: Any, decision_id: int) -> None:
    """From the list, by keyboard: focus the row's link and press Enter."""
    link = page.locator(f'#decisions a[href="#decision={decision_id}"]')
    link.focus()
    page.keyboard.press("Enter")
    page.locator(f'#decision[data-decision-id="{decision_id}"]').wait_for()


def test_an_auditor_sees_why_a_decision_was_made(browser: Any, explained: dict[str, Any]) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 1500}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    console: list[str] = []
    requests: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.on("pageerror", lambda error: console.append(f"Uncaught {error}"))
    page.on("request", lambda request: requests.append(request.url))
    base, shots = explained["base"], explained["shots"]

    page.goto(f"{base}/audit")
    page.fill("#token", explained["token"])
    page.keyboard.press("Enter")
    status = page.locator("#chain-status")
    status.wait_for()
    # the load checked only the rows after the latest checkpoint (serve's reconciler verifies and anchors
    # as it starts), and shows the latest full verification as recorded: `audit verify`'s 200 rows, or
    # the reconciler's, if it ran after the two decisions above
    assert status.inner_text().startswith("Rows after checkpoint") and "chain intact: 202 rows" in status.inner_text()
    full = page.locator("#full-verification").inner_text()
    assert full.startswith("Last full verification") and re.search(r"chain intact: 20[02] rows", full), full
    assert page.locator("#per-week tbody tr").count() >= 2 and page.locator("#top-users tbody tr").count() >= 1
    assert page.locator("#p50").inner_text().endswith("s")
    page.screenshot(path=str(shots / "audit-dashboard.png"))  # the top of it: the list below runs long

    open_decision(page, 201)
    assert page.locator("#decision-title").inner_text() == "Decision 201: approved, verified"
    assert page.evaluate("document.activeElement.id") == "decision-title"  # focus follows, for keyboards
    rules = len(REASONS)  # the table grows with the rules version: positions come from the code
    assert f"Rule {rules} of {rules}: approved as verified" in page.locator("#rule-text").inner_text()
    assert page.locator("#rules-table tr.decided").get_attribute("data-reason") == "verified"
    path = page.locator("#path-text").inner_text()
    assert "recognition (recognized) → liveness_known (livenessDetected)" in path and path.endswith("end")
    assert page.locator('#flow li[data-node="recognition"] li.taken').inner_text() == "recognized → liveness_known"
    assert "decisive" in (page.locator('#flow li[data-node="liveness_known"]').get_attribute("class") or "")
    assert "on-path" not in (page.locator('#flow li[data-node="liveness_new"]').get_attribute("class") or "")
    assert page.locator("#row-verifies").inner_text().startswith("This row verifies")
    assert "ann" in page.locator("#access-log").inner_text()
    page.screenshot(path=str(shots / "audit-decision.png"), full_page=True)

    page.locator("a.back").click()
    open_decision(page, 202)
    assert page.locator("#decision-title").inner_text() == "Decision 202: denied, deepfake_detected"
    position = REASONS.index("deepfake_detected") + 1
    assert f"Rule {position} of {rules}: denied as deepfake_detected" in page.locator("#rule-text").inner_text()
    assert page.locator("#rules-table tr.decided").get_attribute("data-reason") == "deepfake_detected"
    assert page.locator("#rules-table tr.passed").count() == position - 1  # the rows tried before it
    assert "liveness_known (deepfakeDetected)" in page.locator("#path-text").inner_text()
    assert page.locator('#flow li[data-node="liveness_known"] li.taken').inner_text() == (
        "deepfakeDetected → confirm_identity"
    )
    assert "decisive" not in (page.locator('#flow li[data-node="recognition"]').get_attribute("class") or "")
    text = page.locator("#panel").inner_text()
    assert "ada@example.com" not in text and "bob@example.com" not in text and "Ada" not in text

    with page.expect_download() as download_info:
        page.click('button[data-export="csv"]')
    exported = Path(download_info.value.path()).read_text(encoding="utf-8").splitlines()
    assert exported[0].startswith("id,decidedAt,") and len(exported) == 1 + 202

    context.close()
    assert all(url.startswith((base, "blob:")) for url in requests), [u for u in requests if not u.startswith(base)]
    assert [line for line in console if "Content Security Policy" in line or "Refused to" in line] == []
    assert [line for line in console if line.startswith("Uncaught")] == []
