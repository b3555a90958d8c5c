"""`POST /webhooks/facesign`: verify, check shape, enqueue, answer. Nothing slower belongs here."""

from __future__ import annotations

import json
import logging
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from adapters.broker import EnqueueError
from domain import signature
from receiver.services import Services

log = logging.getLogger(__name__)

RECEIVED = b'{"received":true}'


def _json(status: int, body: bytes) -> Response:
    return Response(body, status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed the limit (never read whole)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                return None
        except ValueError:
            pass
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def webhook_endpoint(services: Services):  # type: ignore[no-untyped-def]
    settings = services.settings
    counter = services.metrics.webhooks
    events = services.events
    blocking = not events.in_process

    async def receive(request: Request) -> Response:
        body = await _read_limited(request, settings.webhook_max_bytes)
        if body is None:
            counter.labels("too_large").inc()
            return _error(413, "payload too large")
        header = request.headers.get(signature.HEADER) or request.headers.get(signature.LEGACY_HEADER)
        verdict = signature.verify(header, body, settings.webhook_secrets, time.time(), settings.webhook_tolerance)
        if not verdict.ok:
            counter.labels("invalid_signature").inc()
            services.metrics.signature_failures.labels(verdict.reason).inc()
            log.warning("webhook rejected: signature %s", verdict.reason)
            return PlainTextResponse("Invalid signature", status_code=401)
        try:
            event = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: signed but absurdly nested JSON
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            counter.labels("bad_request").inc()
            return _error(400, "body must be a JSON object with a string type")
        if event["type"] != "session.status":
            counter.labels("ignored").inc()
            return _json(200, RECEIVED)
        session_id = event.get("sessionId")
        if not isinstance(session_id, str) or not session_id.strip():
            counter.labels("bad_request").inc()
            return _error(400, "session.status needs a non-empty string sessionId")
        event_id = event.get("id") if isinstance(event.get("id"), str) else None
        try:
            if blocking:
                await run_in_threadpool(events.enqueue, session_id, event_id)
            else:
                events.enqueue(session_id, event_id)
        except EnqueueError:
            counter.labels("unavailable").inc()
            return _error(503, "queue unavailable, deliver again later")
        counter.labels("accepted").inc()
        return _json(200, RECEIVED)

    return receive
