"""Structured logs: JSON lines, the session id on lines about a session, nothing secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from adapters.logs import JsonLogsAtBoot, configure, redact, session_context


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = []
    out = io.StringIO()
    configure(logging.INFO, out)
    yield out
    root.handlers, root.level = saved_handlers, saved_level


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_with_session_id_only_inside_the_context(stream: io.StringIO) -> None:
    log = logging.getLogger("test.logs")
    with session_context("sess_42"):
        log.info("deciding %s", "sess_42")
    log.info("no session here")
    first, second = lines(stream)
    assert first["session_id"] == "sess_42" and first["message"] == "deciding sess_42"
    assert first["level"] == "INFO" and first["logger"] == "test.logs" and "time" in first
    assert "session_id" not in second


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("mail for Ada.Lovelace+x@Example.co.uk failed", "Ada.Lovelace+x@Example.co.uk"),
        ("link http://h/reset?token=AbC-123_xyz sent", "AbC-123_xyz"),
        ("Authorization: Bearer sk_live_abcdef", "sk_live_abcdef"),
        ("X-FaceSign-Signature: t=1,v1=deadbeef00", "deadbeef00"),
    ],
)
def test_secrets_and_emails_never_reach_the_line(stream: io.StringIO, text: str, secret: str) -> None:
    logging.getLogger("test.logs").warning("%s", text)
    assert secret not in stream.getvalue()
    assert secret not in redact(text)


def test_exception_text_is_scrubbed_too(stream: io.StringIO) -> None:
    try:
        raise ValueError("no user bob@example.com")
    except ValueError:
        logging.getLogger("test.logs").exception("lookup failed")
    [line] = lines(stream)
    assert "bob@example.com" not in json.dumps(line) and "ValueError" in str(line["exc_info"])


def test_worker_processes_switch_to_json_at_boot() -> None:
    root = logging.getLogger()
    saved = root.handlers[:]
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s"))  # as Dramatiq's supervisor sets it up
    root.handlers = [handler]
    try:
        JsonLogsAtBoot().after_process_boot(broker=None)
        logging.getLogger("test.logs").warning("booted")
    finally:
        root.handlers = saved
    assert json.loads(out.getvalue())["message"] == "booted"


def test_a_huge_id_is_cut_on_every_line(stream: io.StringIO) -> None:
    huge = "sess_" + "A" * 200_000  # signed by FaceSign, or by whoever holds the webhook secret
    with session_context(huge):
        logging.getLogger("test.logs").warning("session %s: unknown to FaceSign", huge)
    [line] = lines(stream)
    assert len(stream.getvalue()) < 1000
    assert str(line["session_id"]).startswith("sess_AAAA") and str(line["session_id"]).endswith("…")
    assert str(line["message"]).startswith("session sess_AAAA") and "unknown to FaceSign" in str(line["message"])


def test_uvicorn_access_lines_are_scrubbed_however_the_app_is_started(tmp_path: object) -> None:
    """uvicorn's own logging config formats access lines from the record's arguments: they are scrubbed
    in place, keeping the shape its formatter unpacks."""
    from uvicorn.logging import AccessFormatter

    from config import Settings
    from receiver.app import create_app
    from tests.fakes import make_services

    create_app(make_services(Settings(database_url=f"sqlite:///{tmp_path}/a.db")))
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False))
    access = logging.getLogger("uvicorn.access")
    access.addHandler(handler)
    level, access.level = access.level, logging.INFO
    try:
        args = ("127.0.0.1:5000", "GET", "/reset?token=LiveToken_123", "1.1", 200)
        access.info('%s - "%s %s HTTP/%s" %d', *args)
    finally:
        access.removeHandler(handler)
        access.level = level
    assert "LiveToken_123" not in out.getvalue()
    assert '"GET /reset?token=<redacted> HTTP/1.1" 200' in out.getvalue()
