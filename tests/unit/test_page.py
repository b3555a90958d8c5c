"""`GET /recover`, `GET /reset` and their assets: markup, security headers, and answers that reveal nothing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from adapters.db.models import RecoveryAttempt
from adapters.db.users import add_user
from config import ConfigError, Settings
from domain.flow import build_recovery_flow
from receiver.app import create_app
from receiver.page import content_security_policy
from receiver.services import Services
from tests.conftest import app_database_url
from tests.fakes import make_services


class FakeFaceSign:
    def __init__(self) -> None:
        self.count = 0

    def create_session(self, reference: str, metadata: Any, flow: Any, **_: Any) -> dict[str, Any]:
        self.count += 1
        return {
            "session": {"id": f"sess_{self.count}", "status": "created"},
            "clientSecret": {"url": f"http://127.0.0.1:8001/s/sess_{self.count}"},
        }


def make_client(tmp_path: Path, **overrides: Any) -> tuple[TestClient, Services]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "database_url": app_database_url(tmp_path),
        "facesign_api_url": "http://127.0.0.1:8001",
        "recoveries_per_minute": 100,
    }
    services = make_services(Settings(**{**options, **overrides}), facesign=FakeFaceSign())
    return TestClient(create_app(services)), services


def csp(response: Any) -> dict[str, str]:
    directives = (part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    return {name: value for name, value in directives}


def test_recover_page_embeds_the_session_with_camera_permissions(tmp_path: Path) -> None:
    client, _ = make_client(tmp_path)
    response = client.get("/recover")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert re.search(r'<iframe id="session"[^>]*allow="camera; microphone"', html)
    assert 'id="start"' in html and 'id="open-session"' in html and 'target="_blank"' in html
    assert '<html lang="en">' in html and 'role="status"' in html and 'aria-live="polite"' in html
    assert 'data-reset-minutes="15"' in html
    assert '<script src="/recover/assets/recover.js" defer></script>' in html
    assert "<script>" not in html and "style=" not in html  # nothing inline: the CSP forbids it


def test_recover_csp_frames_only_the_sandbox_origin(tmp_path: Path) -> None:
    client, _ = make_client(tmp_path, facesign_api_url="http://127.0.0.1:8001/some/path")
    response = client.get("/recover")
    policy = csp(response)
    assert policy["frame-src"] == "http://127.0.0.1:8001"
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in response.headers["content-security-policy"]
    assert (
        response.headers["permissions-policy"]
        == 'camera=("http://127.0.0.1:8001"), microphone=("http://127.0.0.1:8001")'
    )
    assert response.headers["x-frame-options"] == "DENY"


def test_frame_origin_setting_overrides_the_api_origin(tmp_path: Path) -> None:
    client, _ = make_client(
        tmp_path, facesign_api_url="https://api.facesign.ai", facesign_frame_origin="https://verify.facesign.ai/x"
    )
    assert csp(client.get("/recover"))["frame-src"] == "https://verify.facesign.ai"


def test_frame_origin_defaults_to_the_api_origin() -> None:
    assert Settings.from_env({}).frame_origin == "https://api.facesign.ai"
    env = {"FACESIGN_FRAME_ORIGIN": "https://pages.example.com:8443/"}
    assert Settings.from_env(env).frame_origin == "https://pages.example.com:8443"


@pytest.mark.parametrize("value", ["ftp://pages.example.com", "pages.example.com"])
def test_bad_frame_origin_stops_start_up(value: str) -> None:
    with pytest.raises(ConfigError, match="^FACESIGN_FRAME_ORIGIN: "):
        Settings.from_env({"FACESIGN_FRAME_ORIGIN": value})


def test_csp_without_frames() -> None:
    assert "frame-src 'none'" in content_security_policy(None)


@pytest.mark.parametrize(
    ("name", "kind", "needle"),
    [("recover.js", "text/javascript", "/recoveries"), ("reset.js", "text/javascript", "/reset-tokens/redeem"),
     ("page.css", "text/css", ".card")],
)  # fmt: skip
def test_assets_are_served(tmp_path: Path, name: str, kind: str, needle: str) -> None:
    client, _ = make_client(tmp_path)
    response = client.get(f"/recover/assets/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(kind)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert needle in response.text


@pytest.mark.parametrize("name", ["layout.html", "__init__.py", "..%2Fpage.py", "nope.js"])
def test_only_listed_assets_are_served(tmp_path: Path, name: str) -> None:
    client, _ = make_client(tmp_path)
    assert client.get(f"/recover/assets/{name}").status_code == 404


def test_reset_landing_page_keeps_the_token_private(tmp_path: Path) -> None:
    client, _ = make_client(tmp_path)
    response = client.get("/reset?token=abc")
    assert response.status_code == 200
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert csp(response)["frame-src"] == "'none'"
    assert "abc" not in response.text  # the script reads it from the address; the server never echoes it
    assert "does not" in response.text or "never sees or stores passwords" in response.text
    assert 'id="redeem"' in response.text


def test_reset_page_does_not_redeem_on_get(tmp_path: Path) -> None:
    """Mail scanners follow links: a GET of the link must leave the token usable."""
    client, services = make_client(tmp_path)
    token = _issue_token(services)
    assert client.get(f"/reset?token={token}").status_code == 200
    assert client.post("/reset-tokens/redeem", json={"token": token}).json() == {"userId": "u1"}


def _issue_token(services: Services) -> str:
    from datetime import UTC, datetime

    from adapters.db.attempts import create_attempt
    from adapters.db.outbox import issue_reset

    now = datetime.now(UTC)
    with services.deps.db.transaction() as session:
        user = add_user(session, "ada@example.com", user_id="u1")
        create_attempt(session, "att1", "sess_att1", build_recovery_flow(), "https://x", now)
        tokens: list[str] = []
        issue_reset(session, "att1", user, now, 900, lambda token: tokens.append(token) or token)
        return tokens[0]


def _recovery_answers(client: TestClient) -> list[tuple[int, list[str], str]]:
    started = client.post("/recoveries", json={"type": "forgot_password"})
    status = client.get(f"/recoveries/{started.json()['id']}")
    page = client.get("/recover")
    return [
        (started.status_code, sorted(started.json()), started.headers["content-type"]),
        (status.status_code, sorted(status.json()), status.json()["status"]),
        (page.status_code, [], page.text),
    ]


def test_answers_are_the_same_with_or_without_any_account(tmp_path: Path) -> None:
    empty, _ = make_client(tmp_path / "empty")
    full, services = make_client(tmp_path / "full")
    with services.deps.db.transaction() as session:
        add_user(session, "ada@example.com", user_id="ada")
    assert _recovery_answers(empty) == _recovery_answers(full)


def test_decided_attempt_reveals_only_its_status(tmp_path: Path) -> None:
    client, services = make_client(tmp_path)
    attempt_id = client.post("/recoveries").json()["id"]
    with services.deps.db.transaction() as session:
        session.get(RecoveryAttempt, attempt_id).status = "denied"  # type: ignore[union-attr]
    response = client.get(f"/recoveries/{attempt_id}")
    assert response.json() == {"id": attempt_id, "status": "denied"}


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    client, _ = make_client(tmp_path, recoveries_per_minute=2)
    assert [client.post("/recoveries").status_code for _ in range(2)] == [201, 201]
    limited = client.post("/recoveries")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 61
    assert "account" not in limited.text
