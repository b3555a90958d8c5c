"""`POST /reset-tokens/redeem`: once, while unexpired, one answer for every bad token."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from adapters.db.attempts import create_attempt
from adapters.db.engine import Database
from adapters.db.models import ResetToken
from adapters.db.outbox import issue_reset
from adapters.db.tokens import redeem
from adapters.db.users import add_user
from config import Settings
from domain.flow import build_recovery_flow
from receiver.app import create_app
from receiver.services import Services
from tests.fakes import make_services as services_for

INVALID = {"error": "invalid_or_expired_token"}


def make_services(database_url: str, **overrides: Any) -> Services:
    return services_for(Settings(database_url=database_url, **overrides))


def issue(services: Services, attempt: str = "att1", now: datetime | None = None, ttl: int = 900) -> str:
    """A user, a decided attempt and its reset token; returns the raw token."""
    now = now or datetime.now(UTC)
    with services.deps.db.transaction() as session:
        user = add_user(session, f"{attempt}@example.com", user_id=f"u_{attempt}")
        create_attempt(session, attempt, f"sess_{attempt}", build_recovery_flow(), "https://x", now)
        tokens: list[str] = []
        issue_reset(session, attempt, user, now, ttl, lambda token: tokens.append(token) or token)
        return tokens[0]


def test_a_token_works_exactly_once(database_url: str) -> None:
    services = make_services(database_url)
    token = issue(services)
    client = TestClient(create_app(services))
    first = client.post("/reset-tokens/redeem", json={"token": token})
    assert (first.status_code, first.json()) == (200, {"userId": "u_att1"})
    assert first.headers["cache-control"] == "no-store"
    again = client.post("/reset-tokens/redeem", json={"token": token})
    assert (again.status_code, again.json()) == (400, INVALID)


def test_only_the_hash_is_stored_and_the_token_has_256_bits(database_url: str) -> None:
    services = make_services(database_url)
    token = issue(services)
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    with services.deps.db.reading() as session:
        stored = session.scalars(select(ResetToken)).one()
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {stored.token_hash, stored.user_id, stored.attempt_id}


def test_expired_token_never_works(database_url: str) -> None:
    services = make_services(database_url, reset_token_ttl=60)
    token = issue(services, now=datetime.now(UTC) - timedelta(seconds=61), ttl=60)
    client = TestClient(create_app(services))
    answer = client.post("/reset-tokens/redeem", json={"token": token})
    assert (answer.status_code, answer.json()) == (400, INVALID)


def test_expiry_is_checked_against_the_time_of_redemption(tmp_path: Path) -> None:
    services = make_services(f"sqlite:///{tmp_path}/r.db")
    issued = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    token = issue(services, now=issued, ttl=900)
    with services.deps.db.transaction() as session:
        assert redeem(session, token, issued + timedelta(seconds=900)) is None  # the boundary is already too late
    with services.deps.db.transaction() as session:
        assert redeem(session, token, issued + timedelta(seconds=899)) == "u_att1"
    with services.deps.db.transaction() as session:
        assert redeem(session, token, issued + timedelta(seconds=1)) is None  # used


@pytest.mark.parametrize(
    "body",
    [
        {"token": "unknown-token-" + "x" * 30},
        {"token": ""},
        {"token": "x" * 10_000},
        {"token": 12},
        {"nope": 1},
        [],
        "text",
    ],
)
def test_every_bad_token_gets_one_answer(tmp_path: Path, body: Any) -> None:
    services = make_services(f"sqlite:///{tmp_path}/r.db")
    issue(services)
    answer = TestClient(create_app(services)).post("/reset-tokens/redeem", json=body)
    assert (answer.status_code, answer.json()) == (400, INVALID)


def test_not_json_gets_the_same_answer(tmp_path: Path) -> None:
    services = make_services(f"sqlite:///{tmp_path}/r.db")
    answer = TestClient(create_app(services)).post("/reset-tokens/redeem", content=b"\xff{")
    assert (answer.status_code, answer.json()) == (400, INVALID)


def test_twenty_concurrent_redemptions_succeed_exactly_once(postgres_url: str) -> None:
    """The conditional UPDATE decides: 20 requests in flight at once, one 200, nineteen 400s."""
    services = make_services(postgres_url)
    token = issue(services)
    app = create_app(services)

    async def race() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(
                *(client.post("/reset-tokens/redeem", json={"token": token}) for _ in range(20))
            )

    answers = asyncio.run(race())
    assert sorted(a.status_code for a in answers) == [200] + [400] * 19
    assert [a.json() for a in answers if a.status_code == 200] == [{"userId": "u_att1"}]


def test_twenty_concurrent_redemptions_on_separate_connections(postgres_url: str) -> None:
    """Without the app: 20 threads, each its own connection, all past a barrier before the UPDATE."""
    import threading

    services = make_services(postgres_url)
    token = issue(services)
    db = Database.connect(postgres_url, pool_size=25)
    barrier = threading.Barrier(20)
    results: list[str | None] = []
    lock = threading.Lock()

    def attempt() -> None:
        with db.transaction() as session:
            session.connection()  # open the connection and transaction before the race starts
            barrier.wait(timeout=30)
            user_id = redeem(session, token, datetime.now(UTC))
        with lock:
            results.append(user_id)

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 20
    assert sorted(results, key=str) == sorted(["u_att1"] + [None] * 19, key=str)
