"""Where anchors are kept outside the database, and how an anchors file is read back."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from adapters.anchors import AnchorSinkError, FileSink, HttpSink, SyslogSink, make_sink
from domain.audit_verify import Anchor
from usecases.anchoring import read_anchors

RECORD = {"anchor": f"3:{'a' * 64}", "count": 3, "hash": "a" * 64, "at": "2026-11-30T10:00:00.000000Z"}


def test_a_file_sink_appends_one_json_line_per_anchor(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "anchors.jsonl")
    sink.write(RECORD)
    sink.write({**RECORD, "count": 4})
    lines = (tmp_path / "anchors.jsonl").read_text().splitlines()
    assert [json.loads(line)["count"] for line in lines] == [3, 4]


def test_a_file_sink_that_cannot_write_says_where(tmp_path: Path) -> None:
    with pytest.raises(AnchorSinkError, match="missing"):
        FileSink(tmp_path / "missing" / "anchors.jsonl").write(RECORD)


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str | None, dict[str, Any]]] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802  (the standard library's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.headers.get("Authorization"), json.loads(body)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def endpoint() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("Handler", (Receiver,), {"received": [], "status": 200})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/anchors", handler
    server.shutdown()
    server.server_close()


def test_an_https_sink_posts_json_with_the_bearer_token(endpoint: tuple[str, type[Receiver]]) -> None:
    url, handler = endpoint
    HttpSink(url, "t0ken").write(RECORD)
    assert handler.received == [("Bearer t0ken", RECORD)]


def test_an_endpoint_that_refuses_is_an_error_without_the_token(endpoint: tuple[str, type[Receiver]]) -> None:
    url, handler = endpoint
    handler.status = 503
    with pytest.raises(AnchorSinkError, match="503") as caught:
        HttpSink(url, "t0ken").write(RECORD)
    assert "t0ken" not in str(caught.value)


def test_syslog_gets_one_datagram_per_anchor(tmp_path: Path) -> None:
    address = str(tmp_path / "log")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(address)
        SyslogSink(address).write(RECORD)
        message = server.recv(4096).decode()
    assert message.startswith("<109>facesign-recovery[") and message.endswith(
        json.dumps(RECORD, sort_keys=True, separators=(",", ":"))
    )


def test_syslog_without_a_listener_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AnchorSinkError, match="syslog"):
        SyslogSink(str(tmp_path / "nobody")).write(RECORD)


def test_the_setting_names_the_sink(tmp_path: Path) -> None:
    assert make_sink(None) is None
    assert isinstance(make_sink("syslog"), SyslogSink)
    assert isinstance(make_sink("https://anchors.example/in", "t"), HttpSink)
    assert isinstance(make_sink(str(tmp_path / "a.jsonl")), FileSink)


def test_an_anchors_file_holds_json_lines_or_bare_anchors(tmp_path: Path) -> None:
    path = tmp_path / "anchors.jsonl"
    lines = ["# kept by the auditors", json.dumps(RECORD), "", f"5:{'b' * 64}"]
    anchors = read_anchors(lines, path)
    assert anchors == [Anchor(3, "a" * 64), Anchor(5, "b" * 64)]
    assert anchors[0].source == "anchors.jsonl line 2, written 2026-11-30T10:00:00.000000Z"
    assert anchors[1].source == "anchors.jsonl line 4"
    with pytest.raises(ValueError, match="anchors.jsonl:2: not an anchor"):
        read_anchors([json.dumps(RECORD), '{"count": 3}'], path)
