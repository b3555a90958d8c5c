"""Where anchors go, outside the database: an append-only JSON-lines file, an HTTPS endpoint, or syslog.

Each sink writes one anchor record (a JSON object) or raises AnchorSinkError; none retries by itself
(the anchor writer keeps what failed and tries again later), and none waits longer than its timeout.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from config import anchor_sink_kind

TIMEOUT = 5.0  # seconds for any one write: connect, send and answer
SYSLOG_ADDRESS = "/dev/log"
SYSLOG_PRIORITY = 13 * 8 + 5  # facility log_audit (13), severity notice (5)
SYSLOG_TAG = "facesign-recovery"


class AnchorSinkError(Exception):
    """An anchor could not be written; the message says where, never with a secret."""


class AnchorSink(Protocol):
    @property
    def name(self) -> str: ...

    def write(self, record: Mapping[str, Any]) -> None: ...


def _line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class FileSink:
    """One JSON line per anchor, appended with O_APPEND (one write call per line, so processes sharing
    the file never interleave) and flushed to disk before the write counts as done."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def name(self) -> str:
        return str(self.path)

    def write(self, record: Mapping[str, Any]) -> None:
        data = (_line(record) + "\n").encode("utf-8")
        try:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(descriptor, data)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        except OSError as exc:
            raise AnchorSinkError(f"anchor file {self.path}: {exc.strerror or exc}") from None


class HttpSink:
    """POSTs the anchor as JSON with a bearer token; any 2xx answer counts as written."""

    def __init__(self, url: str, token: str, timeout: float = TIMEOUT) -> None:
        self.url, self.token, self.timeout = url, token, timeout

    @property
    def name(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"

    def write(self, record: Mapping[str, Any]) -> None:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        try:
            answer = requests.post(self.url, data=_line(record).encode(), headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise AnchorSinkError(f"anchor endpoint {self.name}: {type(exc).__name__}") from None
        if not 200 <= answer.status_code < 300:
            raise AnchorSinkError(f"anchor endpoint {self.name}: answered HTTP {answer.status_code}")


class SyslogSink:
    """One RFC 3164 datagram per anchor to the local syslog socket (facility log_audit)."""

    def __init__(self, address: str = SYSLOG_ADDRESS, timeout: float = TIMEOUT) -> None:
        self.address, self.timeout = address, timeout

    @property
    def name(self) -> str:
        return f"syslog ({self.address})"

    def write(self, record: Mapping[str, Any]) -> None:
        message = f"<{SYSLOG_PRIORITY}>{SYSLOG_TAG}[{os.getpid()}]: audit anchor {_line(record)}"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.address)
                sock.send(message.encode("utf-8"))
        except OSError as exc:
            raise AnchorSinkError(f"syslog at {self.address}: {exc.strerror or exc}") from None


def make_sink(spec: str | None, token: str | None = None, timeout: float = TIMEOUT) -> AnchorSink | None:
    """The sink AUDIT_ANCHOR_SINK names (already validated by the settings), or None when it is unset."""
    if not spec:
        return None
    kind = anchor_sink_kind(spec)
    if kind == "syslog":
        return SyslogSink(timeout=timeout)
    if kind == "url":
        return HttpSink(spec, token or "", timeout)
    return FileSink(spec)
