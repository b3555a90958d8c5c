"""The FaceSign client over real TLS, against an in-process HTTPS server with a test CA (trustme):
the CA bundle from the environment is honoured, and looked up once, not on every request."""

from __future__ import annotations

import json
import os
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme

from adapters.facesign import FaceSignClient, FaceSignTransient, RetryPolicy

ONE_TRY = RetryPolicy(attempts=1, total_seconds=5.0)


class Sessions(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = json.dumps({"session": {"id": self.path.rsplit("/", 1)[-1]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def api(ca: trustme.CA) -> Iterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sessions)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def stats(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths requests stats while sending (its CA bundle checks)."""
    seen: list[str] = []
    isdir, exists = os.path.isdir, os.path.exists

    def counted_isdir(path: Any) -> bool:
        seen.append(str(path))
        return isdir(path)

    def counted_exists(path: Any) -> bool:
        seen.append(str(path))
        return exists(path)

    monkeypatch.setattr(requests.adapters.os.path, "isdir", counted_isdir)
    monkeypatch.setattr(requests.adapters.os.path, "exists", counted_exists)
    return seen


def client_trusting(bundle: Path, base: str, monkeypatch: pytest.MonkeyPatch) -> FaceSignClient:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("NO_PROXY", "*")
    return FaceSignClient(base, "test-api-key", timeout=5.0, connect_timeout=2.0, policy=ONE_TRY)


def test_the_ca_bundle_is_looked_up_once_and_still_verifies_every_connection(
    api: str, ca: trustme.CA, tmp_path: Path, stats: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    client = client_trusting(bundle, api, monkeypatch)
    assert client.get_session("sess_1") == {"session": {"id": "sess_1"}}
    first = list(stats)
    assert first and set(first) == {str(bundle)}  # requests' own checks, on the first request
    # The server closes each connection (HTTP/1.0), so each GET is a new TLS handshake, verified.
    for n in range(2, 7):
        assert client.get_session(f"sess_{n}") == {"session": {"id": f"sess_{n}"}}
    assert stats == first
    client.close()


def test_a_server_the_bundle_does_not_vouch_for_is_refused(
    api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bundle))
    client = client_trusting(bundle, api, monkeypatch)
    for _ in range(2):  # the second goes by the settings kept from the first, and is refused alike
        with pytest.raises(FaceSignTransient):
            client.get_session("sess_1")
    client.close()


def test_a_ca_bundle_that_is_missing_fails_every_request(
    api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_trusting(tmp_path / "absent.pem", api, monkeypatch)
    for _ in range(2):
        with pytest.raises(OSError, match="CA certificate bundle"):
            client.get_session("sess_1")
    client.close()
