"""A customer application's webhook endpoint for tests: verifies every event with the Standard
Webhooks specification's own library and records what it accepted."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    event_id: str
    body: str
    payload: dict[str, Any]


@dataclass
class AppReceiver:
    """`fail_until`: answer 500 before this monotonic time; `fail_rate`: answer 500 to this share."""

    secret: str
    port: int
    fail_until: float = 0.0
    fail_rate: float = 0.0
    seed: int = 18
    accepted: list[Received] = field(default_factory=list)
    refused: list[Received] = field(default_factory=list)
    unverified: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.webhook = Webhook(self.secret)
        self.rng = random.Random(self.seed)  # noqa: S311
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def start(self) -> AppReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (the standard library's name)
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.handle(raw, dict(self.headers.items()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def handle(self, raw: bytes, headers: dict[str, str]) -> int:
        try:
            payload = self.webhook.verify(raw, headers)
        except WebhookVerificationError:
            with self.lock:
                self.unverified += 1
            return 400
        item = Received(headers.get("webhook-id") or headers["Webhook-Id"], raw.decode(), payload)
        with self.lock:
            failing = time.monotonic() < self.fail_until or self.rng.random() < self.fail_rate
            (self.refused if failing else self.accepted).append(item)
        return 500 if failing else 200

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def accepted_ids(self) -> list[str]:
        with self.lock:
            return [item.event_id for item in self.accepted]

    def types(self) -> list[str]:
        with self.lock:
            return sorted(item.payload["type"] for item in self.accepted)


def body_of(item: Received) -> dict[str, Any]:
    return dict(json.loads(item.body))
