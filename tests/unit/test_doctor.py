"""`facesign-recovery doctor`: every check passes on a sound deployment, and each failure says what to fix."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from click.testing import CliRunner, Result

import cli
from config import Settings
from tests.conftest import free_port
from tests.fakes import migrated
from usecases.doctor import check_facesign, check_redis, check_webhook_secret

GOOD_SECRET = "3f9c2b7e41d08a65c7e2f1b9"


def doctor(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Result:
    for name in ("DATABASE_URL", "REDIS_URL", "FACESIGN_API_KEY", "FACESIGN_WEBHOOK_SECRET", "AUDIT_PSEUDONYM_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return CliRunner().invoke(cli.main, ["doctor"])


def test_a_sound_embedded_deployment_passes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ok.db"
    migrated(url).dispose()
    result = doctor(monkeypatch, {"DATABASE_URL": url, "FACESIGN_SANDBOX": "1"})
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output and "schema at" in result.output


def test_an_unmigrated_database_says_to_upgrade_and_is_not_created(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = doctor(monkeypatch, {"DATABASE_URL": f"sqlite:///{tmp_path}/none.db"})
    assert result.exit_code == 1
    assert "FAIL  database" in result.output and "fix: run `facesign-recovery db upgrade`" in result.output
    assert not (tmp_path / "none.db").exists()


def test_a_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    result = doctor(monkeypatch, {"FACESIGN_API_KEY": "k"})  # and no webhook secret
    assert result.exit_code == 1 and "FACESIGN_WEBHOOK_SECRET" in result.output


def test_live_mode_needs_a_pseudonym_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
        "FACESIGN_API_KEY": "k",
        "FACESIGN_WEBHOOK_SECRET": GOOD_SECRET,
    }
    with responses.RequestsMock() as vendor:
        vendor.add(responses.GET, re.compile(r"https://api\.facesign\.ai/sessions/doctor-\w+"), status=404)
        result = doctor(monkeypatch, env)
    assert "FAIL  configuration" in result.output and "AUDIT_PSEUDONYM_KEY" in result.output


def live(**overrides: object) -> Settings:
    options: dict[str, object] = {
        "facesign_api_key": "key_live",
        "facesign_api_url": "https://api.facesign.test",
        "webhook_secrets": (GOOD_SECRET,),
    }
    options.update(overrides)
    return Settings(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "ok", "says"),
    [
        (404, True, "accepted the API key"),
        (401, False, "FACESIGN_API_KEY"),
        (403, False, "FACESIGN_API_KEY"),
        (400, False, "FACESIGN_API_URL"),
        (302, False, "FACESIGN_API_URL"),
        (503, False, "unreachable"),
    ],
)
def test_facesign_credentials_by_one_authenticated_get(status: int, ok: bool, says: str) -> None:
    with responses.RequestsMock() as vendor:
        vendor.add(responses.GET, re.compile(r"https://api\.facesign\.test/sessions/doctor-\w+"), status=status)
        check = check_facesign(live())
        [call] = vendor.calls  # one request, no retries
    assert call.request.headers["Authorization"] == "Bearer key_live"
    assert check.ok is ok and says in check.found + check.fix


def test_facesign_that_does_not_answer_fails_within_the_timeout() -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    check = check_facesign(live(facesign_api_url=f"http://127.0.0.1:{port}"))
    assert not check.ok and "unreachable" in check.found and time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("secrets", "ok"),
    [
        ((GOOD_SECRET,), True),
        ((GOOD_SECRET, "a1b2c3d4e5f6a7b8c9d0"), True),
        (("short",), False),
        (("whsec_demo_change_me",), False),
        ((f'"{GOOD_SECRET}"',), False),
        ((GOOD_SECRET, "REPLACE_WITH_THE_SECRET"), False),
    ],
)
def test_webhook_secret_form(secrets: tuple[str, ...], ok: bool) -> None:
    check = check_webhook_secret(live(webhook_secrets=secrets))
    assert check.ok is ok and (ok or "FACESIGN_WEBHOOK_SECRET" in check.found)


def test_redis_that_does_not_answer_fails_fast() -> None:
    started = time.monotonic()
    check = check_redis(Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    assert not check.ok and "REDIS_URL" in check.fix and time.monotonic() - started < 10


@pytest.fixture
def evicting_redis() -> Iterator[str]:
    """A Redis of our own that drops any key when full, as a misconfigured production one would."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(  # noqa: S603
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--maxmemory-policy", "allkeys-lru"],
        stdout=subprocess.DEVNULL,
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_redis_that_may_evict_queued_events_fails(evicting_redis: str) -> None:
    deadline = time.monotonic() + 10
    check = check_redis(Settings(redis_url=evicting_redis))
    while "no answer" in check.found and time.monotonic() < deadline:  # the server is still starting
        time.sleep(0.1)
        check = check_redis(Settings(redis_url=evicting_redis))
    assert not check.ok and "allkeys-lru" in check.found and "noeviction" in check.fix


def test_redis_that_keeps_queued_events_passes(redis_url: str) -> None:
    check = check_redis(Settings(redis_url=redis_url))
    assert check.ok, check.found
