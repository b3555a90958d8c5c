"""Logs: JSON or console lines with the same fields, the ids on lines about a session, nothing secret."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from adapters.logs import LogsAtBoot, configure, log_context, redact, resolve_format, session_context
from adapters.queue.broker import EnqueueError
from config import Settings
from domain.signature import HEADER, sign
from receiver.app import create_app
from tests.fakes import NoEvents, make_services


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
        LogsAtBoot().after_process_boot(broker=None)
        logging.getLogger("test.logs").warning("booted")
    finally:
        root.handlers = saved
    assert json.loads(out.getvalue())["message"] == "booted"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def capture(log_format: str | None, stream: io.StringIO) -> io.StringIO:
    root = logging.getLogger()
    root.handlers = []
    configure(logging.INFO, stream, log_format)
    return stream


@pytest.fixture
def restored_root() -> Iterator[None]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    yield
    root.handlers, root.level = saved_handlers, saved_level


def emit_one() -> None:
    with log_context(session_id="sess_7", event_id="evt_9"), log_context(attempt_id="att_3"):
        logging.getLogger("test.logs").warning("mail for bob@example.com queued")


def test_console_and_json_lines_carry_the_same_fields(restored_root: None) -> None:
    json_out = capture("json", io.StringIO())
    emit_one()
    [record] = lines(json_out)
    console_out = capture("console", io.StringIO())
    emit_one()
    console = console_out.getvalue().strip()
    assert {"session_id": "sess_7", "attempt_id": "att_3", "event_id": "evt_9"}.items() <= record.items()
    assert record["message"] == "mail for <email> queued"
    for name in ("session_id", "attempt_id", "event_id"):
        assert f"{name}={record[name]}" in console
    assert " WARNING " in console and " test.logs " in console and "mail for <email> queued" in console
    assert "bob@example.com" not in console
    assert not console.startswith("{")


def test_a_terminal_gets_console_lines_and_anything_else_json() -> None:
    assert resolve_format(None, Terminal()) == "console"
    assert resolve_format(None, io.StringIO()) == "json"
    assert resolve_format("json", Terminal()) == "json"
    assert resolve_format("console", io.StringIO()) == "console"


def test_unset_format_on_a_terminal_prints_console_lines(restored_root: None) -> None:
    out = capture(None, Terminal())
    logging.getLogger("test.logs").info("hello")
    assert out.getvalue().rstrip().endswith("test.logs  hello")


def test_worker_processes_take_the_format_they_are_given(restored_root: None) -> None:
    root = logging.getLogger()
    out = io.StringIO()
    root.handlers = [logging.StreamHandler(out)]
    LogsAtBoot("console").after_process_boot(broker=None)
    with session_context("sess_1"):
        logging.getLogger("test.logs").warning("booted")
    assert out.getvalue().rstrip().endswith("booted  session_id=sess_1")


def test_receiver_lines_name_the_attempt_session_and_event(restored_root: None, tmp_path: Path) -> None:
    class QueueDown(NoEvents):
        async def enqueue_async(self, session_id: str, event_id: str | None, event_at: int | None = None) -> str:
            raise EnqueueError("broker down")

    settings = Settings(database_url=f"sqlite:///{tmp_path}/db.sqlite", webhook_secrets=("secret",))
    client = TestClient(create_app(make_services(settings, events=QueueDown())))
    out = capture("json", io.StringIO())
    started = client.post("/recoveries", json={"type": "forgot_password"})
    body = json.dumps({"id": "evt_5", "type": "session.status", "sessionId": "sess_5"}).encode()
    refused = client.post("/webhooks/facesign", content=body, headers={HEADER: sign("secret", int(time.time()), body)})
    assert started.status_code == 201 and refused.status_code == 503
    by_logger = {line["logger"]: line for line in lines(out)}
    start_line, webhook_line = by_logger["usecases.recoveries"], by_logger["receiver.webhooks"]
    assert start_line["attempt_id"] == started.json()["id"] and start_line["session_id"]
    assert (webhook_line["session_id"], webhook_line["event_id"]) == ("sess_5", "evt_5")


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
