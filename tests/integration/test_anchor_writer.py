"""Anchors written automatically by the reconciler: a sink that is down stops no decision, and what it
missed is written later, oldest first."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from adapters.anchors import HttpSink
from tests.conftest import free_port
from tests.fakes import make_deps, seed_attempt
from usecases import decide
from usecases.anchoring import RETRY_FIRST, AnchorWriter
from usecases.audit_verification import process_name
from usecases.reconcile import run_forever


class Anchors(BaseHTTPRequestHandler):
    """The auditors' anchor endpoint: down (503) until told otherwise."""

    up = False
    received: list[tuple[str | None, dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802  (the standard library's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        if cls.up:
            cls.received.append((self.headers.get("Authorization"), body))
        self.send_response(200 if cls.up else 503)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def endpoint() -> Iterator[tuple[str, type[Anchors]]]:
    handler = type("Endpoint", (Anchors,), {"up": False, "received": []})
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/anchors", handler
    server.shutdown()
    server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_down_sink_stops_no_decision_and_gets_its_anchors_later(
    database_url: str, tmp_path: Path, endpoint: tuple[str, type[Anchors]]
) -> None:
    url, sink = endpoint
    deps, fake = make_deps(database_url, str(tmp_path / "mail"))
    clock = Clock()
    writer = AnchorWriter(deps.db, HttpSink(url, "anchor-token"), 3600.0, process_name("test"), clock=clock)

    first = decide.process_session_event(deps, seed_attempt(deps, fake, "a1", email="a1@example.com"))
    assert first.status == "approved"
    assert writer.tick() is not None and len(writer.pending) == 1  # 1:… refused by the sink, kept
    second = decide.process_session_event(deps, seed_attempt(deps, fake, "a2", email="a2@example.com"))
    assert second.status == "approved"  # decisions go on while the sink is down

    clock.now += 3600  # next interval, sink still down: 2:… queued behind 1:…
    assert writer.tick() is not None and len(writer.pending) == 2 and sink.received == []

    sink.up = True
    clock.now += RETRY_FIRST * 0.5  # before the backoff has passed: no new attempt
    writer.tick()
    assert sink.received == []
    clock.now += RETRY_FIRST * 2
    writer.tick()
    assert [body["count"] for _, body in sink.received] == [1, 2] and not writer.pending
    authorization, body = sink.received[0]
    assert authorization == "Bearer anchor-token"
    assert body["anchor"] == f"1:{body['hash']}" and body["at"].endswith("Z") and body["type"].endswith("audit-anchor")


def test_the_reconciler_decides_with_the_sink_down_and_anchors_on_shutdown(database_url: str, tmp_path: Path) -> None:
    refused = f"http://127.0.0.1:{free_port()}/anchors"  # nothing listens there
    deps, fake = make_deps(
        database_url,
        str(tmp_path / "mail"),
        reconcile_after=0,
        reconcile_interval=1,
        audit_anchor_sink=refused,
        audit_anchor_token="t",
        audit_anchor_interval=1,
    )
    seed_attempt(deps, fake)  # its webhook was lost: the reconciler decides it
    stop = threading.Event()
    loop = threading.Thread(target=run_forever, args=(deps, stop))
    loop.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and decide_status(deps) == "pending":
        time.sleep(0.1)
    stop.set()
    loop.join(20)
    assert not loop.is_alive()
    assert decide_status(deps) == "approved"


def decide_status(deps: Any) -> str:
    from adapters.db.models import RecoveryAttempt

    with deps.db.reading() as session:
        attempt = session.get(RecoveryAttempt, "att1")
        return attempt.status if attempt else "missing"


def test_the_reconciler_writes_anchors_to_a_file_at_its_interval_and_on_shutdown(
    database_url: str, tmp_path: Path
) -> None:
    anchors = tmp_path / "anchors.jsonl"
    deps, fake = make_deps(
        database_url, str(tmp_path / "mail"), reconcile_after=0, reconcile_interval=1, audit_anchor_sink=str(anchors)
    )
    decide.process_session_event(deps, seed_attempt(deps, fake))
    stop = threading.Event()
    loop = threading.Thread(target=run_forever, args=(deps, stop))
    loop.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not anchors.exists():
        time.sleep(0.1)
    stop.set()
    loop.join(20)
    lines = [json.loads(line) for line in anchors.read_text().splitlines()]
    assert len(lines) == 2  # one as the loop started, one on the way out (the hour had not passed)
    assert {line["anchor"] for line in lines} == {f"1:{lines[0]['hash']}"}
    assert lines[0]["by"].startswith("reconciler on ")
