"""Every JSON route's body is bounded and timed: 413 before the rest is read, 408 when it does not
arrive, 415 for a declared non-JSON type, and a client that goes away is a debug line only.

The app is driven as an ASGI server drives it, with a `receive` that hands the body over in chunks
(as a chunked upload arrives), so what the app reads and what it holds in memory can be measured.
"""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from config import Settings
from receiver.app import create_app
from tests.conftest import app_database_url
from tests.fakes import make_services

SECRET = "whsec_bodies"
ROUTES = ("/recoveries", "/reset-tokens/redeem", "/webhooks/facesign")
TEN_MB = 10 * 1024 * 1024
CHUNK = 64 * 1024

Receive = Callable[[], Awaitable[dict[str, Any]]]


def make_app(tmp_path: Path, **overrides: Any) -> Any:
    settings = Settings(database_url=app_database_url(tmp_path), webhook_secrets=(SECRET,), **overrides)
    return create_app(make_services(settings))


def scope(path: str, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("203.0.113.7", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def call(app: Any, path: str, receive: Receive, headers: dict[str, str] | None = None) -> int:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope(path, {"content-type": "application/json", **(headers or {})}), receive, send)
    return int(sent[0]["status"])


class ChunkedUpload:
    """A body of `total` bytes in CHUNK pieces, without Content-Length; counts what was asked for."""

    def __init__(self, total: int) -> None:
        self.remaining = total
        self.sent = 0

    async def __call__(self) -> dict[str, Any]:
        if self.remaining <= 0:
            await asyncio.sleep(3600)  # the app asked past the end: a server would wait for the client
        size = min(CHUNK, self.remaining)
        self.remaining -= size
        self.sent += size
        return {"type": "http.request", "body": b"x" * size, "more_body": self.remaining > 0}


@pytest.mark.parametrize("path", ROUTES)
def test_a_10_mb_chunked_body_is_refused_without_being_read(tmp_path: Path, path: str) -> None:
    app = make_app(tmp_path)
    upload = ChunkedUpload(TEN_MB)
    tracemalloc.start()
    try:
        status = asyncio.run(call(app, path, upload))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 413
    assert upload.sent <= 512 * 1024, f"read {upload.sent} bytes of a body it had to refuse"
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes while refusing a 10 MB body"


@pytest.mark.parametrize("path", ROUTES)
def test_a_declared_length_over_the_limit_is_refused_before_reading(tmp_path: Path, path: str) -> None:
    app = make_app(tmp_path)
    upload = ChunkedUpload(TEN_MB)
    assert asyncio.run(call(app, path, upload, {"content-length": str(TEN_MB)})) == 413
    assert upload.sent == 0


class SlowBody:
    """One byte, then nothing: a client sending a byte now and then, for ever."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            return {"type": "http.request", "body": b"{", "more_body": True}
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


@pytest.mark.parametrize("path", ROUTES)
def test_a_body_that_does_not_arrive_in_time_gets_408(tmp_path: Path, path: str) -> None:
    app = make_app(tmp_path, body_read_timeout=0.5)
    loop = asyncio.new_event_loop()
    try:
        started = loop.time()
        status = loop.run_until_complete(asyncio.wait_for(call(app, path, SlowBody()), timeout=10))
        took = loop.time() - started
    finally:
        loop.close()
    assert status == 408
    assert 0.5 <= took < 3, took


def test_a_body_that_keeps_trickling_is_still_cut_at_the_deadline(tmp_path: Path) -> None:
    """The deadline is for the whole body, not for each piece: a byte every 0.1 s does not extend it."""
    app = make_app(tmp_path, body_read_timeout=0.5)

    async def trickle() -> dict[str, Any]:
        await asyncio.sleep(0.1)
        return {"type": "http.request", "body": b" ", "more_body": True}

    status = asyncio.run(asyncio.wait_for(call(app, "/recoveries", trickle), timeout=10))
    assert status == 408


def test_a_prompt_body_is_not_cut_by_an_earlier_requests_deadline(tmp_path: Path) -> None:
    app = make_app(tmp_path, body_read_timeout=0.5)

    async def both() -> tuple[int, int]:
        slow = asyncio.create_task(call(app, "/reset-tokens/redeem", SlowBody()))
        await asyncio.sleep(0.4)

        async def prompt() -> dict[str, Any]:
            await asyncio.sleep(0.3)  # arrives after the slow one's deadline, well within its own
            return {"type": "http.request", "body": b'{"token": "nope"}', "more_body": False}

        return await slow, await call(app, "/reset-tokens/redeem", prompt)

    assert asyncio.run(both()) == (408, 400)


@pytest.mark.parametrize("path", ROUTES)
def test_a_client_that_goes_away_mid_body_is_a_debug_line(
    tmp_path: Path, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(tmp_path)
    messages = iter(
        [{"type": "http.request", "body": b'{"type"', "more_body": True}, {"type": "http.disconnect"}],
    )

    async def receive() -> dict[str, Any]:
        return next(messages)

    with caplog.at_level(logging.DEBUG):
        asyncio.run(call(app, path, receive))  # returns: nothing is raised to the server
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("went away" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)


@pytest.mark.parametrize("path", ["/recoveries", "/reset-tokens/redeem"])
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_a_form_posted_type_gets_415(tmp_path: Path, path: str, content_type: str) -> None:
    from starlette.testclient import TestClient

    services = make_services(Settings(database_url=app_database_url(tmp_path)))
    client = TestClient(create_app(services))
    answer = client.post(path, content=b'{"type": "forgot_password"}', headers={"Content-Type": content_type})
    assert answer.status_code == 415
    assert services.deps.facesign.sessions == {}  # no FaceSign session was created
