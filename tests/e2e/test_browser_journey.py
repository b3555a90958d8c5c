"""The person's journey in headless Chromium against `serve` with the sandbox.

Open /recover, go through the sandbox's hosted page inside the iframe, see the outcome, read the
.eml, open its link and redeem the token. Text is checked, never pixels; screenshots are saved under
the test's temporary folder for a human to look at. Skipped where /usr/bin/chromium or Playwright is
missing; a failure instead with REQUIRE_SERVICES=1, as in CI.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import REQUIRE_SERVICES, free_port
from tests.e2e.conftest import Processes, base_env, wait_for_mail, wait_http

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 45_000


def browser_unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        browser_unavailable(f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        browser_unavailable(f"the playwright package is not installed ({exc})")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def service(processes: Processes, tmp_path: Path) -> dict[str, Any]:
    port, sandbox_port = free_port(), free_port()
    env = base_env(
        DATABASE_URL=f"sqlite:///{tmp_path}/browser.db",
        MAIL_BACKEND="file",
        MAIL_DIR=str(tmp_path / "mail"),
        SANDBOX_PORT=str(sandbox_port),
        FACESIGN_SANDBOX="1",
    )
    assert processes.run(env, "db", "upgrade").returncode == 0
    added = processes.run(env, "users", "add", "ada@example.com", "--id", "ada", "--name", "Ada Lovelace")
    assert added.returncode == 0, added.stderr
    processes.start("serve", env, "serve", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/readyz", procs=processes)
    # SCREENSHOT_DIR keeps them somewhere lasting (the README's picture comes from here).
    shots = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path / "screenshots")
    return {"base": base, "mail": tmp_path / "mail", "shots": shots, "processes": processes, "env": env}


class Journey:
    """One browser page, with every console message kept so that CSP violations fail the test."""

    def __init__(self, browser: Any, service: dict[str, Any]) -> None:
        self.context = browser.new_context(viewport={"width": 1000, "height": 1100})
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.console: list[str] = []
        self.page.on("console", lambda message: self.console.append(message.text))
        self.page.on("pageerror", lambda error: self.console.append(f"Uncaught {error}"))
        self.base = service["base"]
        self.shots: Path = service["shots"]
        self.shots.mkdir(parents=True, exist_ok=True)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def verify_in_sandbox(self, identity: str, liveness: str) -> None:
        page = self.page
        page.goto(f"{self.base}/recover")
        assert page.locator("h1#title").inner_text() == "Recover your account"
        self.shot("1-recover")
        page.click("#start")
        iframe = page.locator("iframe#session")
        iframe.wait_for(state="visible")
        assert iframe.get_attribute("allow") == "camera; microphone"
        assert page.locator("#open-session").get_attribute("href") == iframe.get_attribute("src")
        frame = page.frame_locator("iframe#session")
        frame.locator("#identity").select_option(identity)
        frame.locator("#liveness").select_option(liveness)
        frame.locator("#confirm_email").check()
        self.shot(f"2-sandbox-{liveness}")
        frame.locator("#finish").click()
        frame.get_by_role("heading", name="Verification finished").wait_for()

    def outcome(self) -> tuple[str, str]:
        title = self.page.locator("#result-title")
        title.wait_for(state="visible")
        return title.inner_text(), self.page.locator("#result-text").inner_text()

    def close(self) -> None:
        problems = ("Content Security Policy", "Refused to", "Permissions-Policy", "Uncaught")
        blocked = [line for line in self.console if any(problem in line for problem in problems)]
        self.context.close()
        assert blocked == [], blocked


def reset_link(mail_dir: Path) -> tuple[str, str]:
    files = wait_for_mail(mail_dir)
    assert len(files) == 1, files
    message = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert message["To"] == "ada@example.com" and message["Subject"] == "Reset your password"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    match = re.search(r"http\S+token=([A-Za-z0-9_-]+)", text)
    assert match, text
    return match.group(0), match.group(1)


def test_approved_journey_ends_with_a_redeemed_token(browser: Any, service: dict[str, Any]) -> None:
    journey = Journey(browser, service)
    journey.verify_in_sandbox("ada@example.com", "live")
    title, text = journey.outcome()
    journey.shot("3-approved")
    assert title == "Check your email"
    assert "sent a link" in text and "15 minutes" in text
    assert journey.page.locator("#retry").is_hidden()

    link, token = reset_link(service["mail"])
    assert link.startswith(f"{service['base']}/reset#token=")  # the fragment: never sent to a server
    page = journey.page
    page.goto(link)
    assert page.locator("h1#reset-title").inner_text() == "Choose a new password"
    assert "token=" not in page.url  # the page drops the token from the address bar
    journey.shot("4-reset")
    page.click("#redeem")
    page.locator("#reset-result-title").wait_for(state="visible")
    journey.shot("5-redeemed")
    assert page.locator("#reset-result-title").inner_text() == "Link accepted"
    assert "account ada" in page.locator("#reset-result-text").inner_text()
    again = requests.post(f"{service['base']}/reset-tokens/redeem", json={"token": token}, timeout=5)
    assert (again.status_code, again.json()) == (400, {"error": "invalid_or_expired_token"})
    journey.close()


def test_deepfake_journey_is_denied_with_a_retry(browser: Any, service: dict[str, Any]) -> None:
    journey = Journey(browser, service)
    journey.verify_in_sandbox("ada@example.com", "deepfake")
    title, text = journey.outcome()
    journey.shot("3-denied")
    assert title == "We could not verify that it is you"
    assert "deepfake" not in text.lower() and "no reset link was sent" in text
    retry = journey.page.locator("#retry")
    assert retry.is_visible()
    retry.click()
    journey.page.locator("iframe#session").wait_for(state="visible")  # a fresh attempt, ready to go again
    # Ada hears that someone tried; no reset link goes anywhere.
    assert subjects(service["mail"], 1) == ["Someone tried to recover your account"]
    journey.close()


def subjects(mail_dir: Path, count: int) -> list[str]:
    """The subjects of the .eml files once there are `count` of them (mail goes out after the decision)."""
    deadline = time.monotonic() + 30
    while len(files := sorted(mail_dir.glob("*.eml"))) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return sorted(email.message_from_bytes(f.read_bytes(), policy=email.policy.default)["Subject"] for f in files)


def test_locked_journey_says_only_that_it_could_not_verify(browser: Any, service: dict[str, Any]) -> None:
    """Three deepfakes of Ada lock her recoveries: then even her real face is refused, and the page
    says no more than for any other refusal. Ada's mailbox says what happened."""
    journey = Journey(browser, service)
    for _ in range(3):
        journey.verify_in_sandbox("ada@example.com", "deepfake")
        assert journey.outcome()[0] == "We could not verify that it is you"
    journey.verify_in_sandbox("ada@example.com", "live")
    title, text = journey.outcome()
    journey.shot("3-locked")
    assert title == "We could not verify that it is you"
    assert "no reset link was sent" in text
    assert not re.search(r"lock|pause|attempts|deepfake|too many", f"{title} {text}", re.IGNORECASE)
    assert subjects(service["mail"], 2) == [
        "Account recovery is paused for your account",
        "Someone tried to recover your account",
    ]
    listed = service["processes"].run(service["env"], "users", "locks")
    assert listed.returncode == 0 and "\nada  " in listed.stdout
    journey.close()
