"""One HTTP attempt at delivering an event, signed as the Standard Webhooks specification says.

The signature is the specification's own library's: `webhook-signature: v1,<base64 HMAC-SHA256 of
"<id>.<timestamp>.<body>">` under the decoded `whsec_` secret.
"""

from __future__ import annotations

import time
from datetime import datetime

import requests
from standardwebhooks.webhooks import Webhook

TIMEOUT = 10.0  # a 2xx within this many seconds counts as delivered
USER_AGENT = "facesign-recovery-events/1"


class EventSender:
    """Thread-safe enough for the worker's threads: each attempt is one request on a shared pool."""

    def __init__(self, secret: str, timeout: float = TIMEOUT) -> None:
        self.webhook = Webhook(secret)
        self.timeout = timeout
        self.http = requests.Session()

    def headers(self, event_id: str, body: str, now: datetime) -> dict[str, str]:
        return {
            "webhook-id": event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.webhook.sign(event_id, now, body),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }

    def post(self, url: str, event_id: str, body: str, now: datetime) -> str | None:
        """None when the application answered 2xx in time; else a short reason (never the URL)."""
        started = time.monotonic()
        try:
            # No redirects: a 3xx is not an acknowledgement, and following one would re-send the body elsewhere.
            with self.http.post(
                url,
                data=body.encode(),
                headers=self.headers(event_id, body, now),
                timeout=(self.timeout, self.timeout),
                allow_redirects=False,
                stream=True,  # the answer's body is never read
            ) as answer:
                status = answer.status_code
        except requests.RequestException as exc:
            return type(exc).__name__
        if time.monotonic() - started > self.timeout:
            return "too slow"
        return None if 200 <= status < 300 else f"HTTP {status}"

    def close(self) -> None:
        self.http.close()
