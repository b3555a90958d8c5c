"""`POST /webhooks/facesign`: verify, check shape, enqueue, answer. Nothing slower belongs here.

A plain ASGI endpoint rather than a `Request -> Response` function: the hot path (a valid event,
200) is the one FaceSign hits at volume, and Starlette's Request and Response objects cost about
as much as the work itself. Errors still go through Starlette responses.
"""

from __future__ import annotations

import logging
import time

import orjson
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from adapters.logs import log_context
from adapters.queue.broker import EnqueueError, QueueFullError
from domain import signature
from receiver.bodies import BodyError, ClientGone, read_limited
from receiver.services import Services

log = logging.getLogger(__name__)

RECEIVED = b'{"received":true}'
_RECEIVED_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-length", str(len(RECEIVED)).encode()), (b"content-type", b"application/json")],
}
_RECEIVED_BODY = {"type": "http.response.body", "body": RECEIVED}
_SIGNATURE = signature.HEADER.lower().encode("latin-1")
_LEGACY_SIGNATURE = signature.LEGACY_HEADER.lower().encode("latin-1")
RESULTS = (
    "accepted",
    "ignored",
    "too_large",
    "timed_out",
    "aborted",
    "invalid_signature",
    "bad_request",
    "unavailable",
    "queue_full",
)
_BODY_RESULTS = {413: "too_large", 408: "timed_out"}


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _headers(scope: Scope) -> tuple[bytes | None, str | None]:
    """Content-Length and the signature header (the current name first, then the legacy one)."""
    length = current = legacy = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = value
        elif name == _SIGNATURE:
            current = current or value
        elif name == _LEGACY_SIGNATURE:
            legacy = legacy or value
    header = current or legacy
    return length, header.decode("latin-1") if header else None


def _session_event(body: bytes, signed_at: int) -> tuple[int, str, str | None, int] | None:
    """Shape check: None for an ignored type, else (400 or 0, session id, event id, event time).

    The event time (epoch milliseconds) is the event's `createdAt`, both signed by FaceSign; it dates
    the status change the event reports, which the expiry rule judges. A `createdAt` that is missing,
    not a whole number or later than the signature's second stands in for nothing: the signature's time does.
    An `id` that is not a non-empty string is no event id (nothing to drop duplicates by).
    """
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:  # also invalid UTF-8, lone surrogates, NaN, nesting past 1,024
        event = None  # so every string below is one UTF-8 encodes: the queue can carry it
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return 400, "body must be a JSON object with a string type", None, 0
    if event["type"] != "session.status":
        return None
    session_id = event.get("sessionId")
    if not isinstance(session_id, str) or not session_id.strip():
        return 400, "session.status needs a non-empty string sessionId", None, 0
    event_id = event.get("id")
    created_at = event.get("createdAt")
    signed_ms = signed_at * 1000  # `t` is whole seconds: an event created in that second may read later
    event_at = created_at if type(created_at) is int and 0 < created_at < signed_ms + 1000 else signed_ms
    return 0, session_id, event_id if isinstance(event_id, str) and event_id else None, event_at


class WebhookEndpoint:
    """An ASGI app (an object, so that Starlette's Route does not wrap it as a Request handler)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings
        counter = services.metrics.webhooks
        self.results = {name: counter.labels(name) for name in RESULTS}
        self.events = services.events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._handle(scope, receive)
        if response is None:
            await send(_RECEIVED_START)
            await send(_RECEIVED_BODY)
        else:
            await response(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive) -> Response | None:
        """The webhook contract's checks in order; None means 200 `{"received": true}`."""
        settings, results = self.settings, self.results
        declared, header = _headers(scope)
        try:
            body = await read_limited(receive, declared, settings.webhook_max_bytes, settings.body_read_timeout)
        except ClientGone as exc:
            results["aborted"].inc()
            log.debug("webhook client went away mid-body")
            return exc.response()  # nobody reads it: the server drops what is sent after a disconnect
        except BodyError as exc:
            results[_BODY_RESULTS.get(exc.status, "bad_request")].inc()
            return exc.response()
        verdict = signature.verify(header, body, settings.webhook_secrets, time.time(), settings.webhook_tolerance)
        if not verdict.ok:
            results["invalid_signature"].inc()
            self.services.metrics.signature_failures.labels(verdict.reason).inc()
            log.warning("webhook rejected: signature %s", verdict.reason)
            return PlainTextResponse("Invalid signature", status_code=401)
        shape = _session_event(body, verdict.timestamp or int(time.time()))
        if shape is None:
            results["ignored"].inc()
            return None
        status, session_id, event_id, event_at = shape
        if status:
            results["bad_request"].inc()
            return _error(status, session_id)
        try:
            await self.events.enqueue_async(session_id, event_id, event_at)
        except QueueFullError:
            results["queue_full"].inc()
            return _error(503, "queue full, deliver again later")
        except EnqueueError:
            results["unavailable"].inc()
            with log_context(session_id=session_id, event_id=event_id):
                log.warning("session.status event not enqueued; answered 503 for FaceSign to deliver again")
            return _error(503, "queue unavailable, deliver again later")
        results["accepted"].inc()
        return None


def webhook_endpoint(services: Services) -> WebhookEndpoint:
    return WebhookEndpoint(services)
