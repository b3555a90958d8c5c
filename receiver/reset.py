"""`POST /reset-tokens/redeem` for the customer app, and the `GET /reset` page the emailed link opens."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from functools import partial

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from adapters.db.engine import DatabaseUnavailable
from receiver.bodies import BodyError, json_body
from receiver.page import page_headers, render
from receiver.recoveries import client_address
from receiver.services import Services
from usecases.recoveries import redeem_reset_token

log = logging.getLogger(__name__)

# A token is 43 characters; the room above that keeps "any other token gets 400" true for silly
# tokens of several KiB, while a body that could only be an attack is 413 without being read.
MAX_BODY = 16384
NO_STORE = {"Cache-Control": "no-store"}


def _invalid_token() -> Response:
    # One answer for unknown, used and expired tokens: a caller learns nothing about which it was.
    return JSONResponse({"error": "invalid_or_expired_token"}, status_code=400, headers=NO_STORE)


def reset_routes(services: Services) -> list[Route]:
    async def redeem_endpoint(request: Request) -> Response:
        try:
            body = await json_body(request, MAX_BODY, services.settings.body_read_timeout)
        except BodyError as exc:
            return exc.response()
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            payload = None
        token = payload.get("token") if isinstance(payload, dict) else None
        if not isinstance(token, str):
            return _invalid_token()
        enqueue = services.event_deliveries.enqueue if services.event_deliveries else None
        try:
            user_id = await run_in_threadpool(
                partial(redeem_reset_token, enqueue=enqueue, client=client_address(request)),
                services.deps,
                token,
                datetime.now(UTC),
            )
        except DatabaseUnavailable:
            # Whether the redemption committed is unknown; trying again answers that (a used token is refused).
            return JSONResponse({"error": "service unavailable"}, status_code=503, headers={"Retry-After": "5"})
        if user_id is None:
            log.info("reset token redemption refused")
            return _invalid_token()
        log.info("reset token redeemed for user %s", user_id)
        return JSONResponse({"userId": user_id}, headers=NO_STORE)

    async def landing(request: Request) -> Response:
        # The token arrives in the fragment (older links: the query), which only the script reads; GET
        # never redeems it, because mail scanners follow links, and the page loads nothing from
        # elsewhere that could see the address.
        html = render("Choose a new password", "reset.html", {}, "reset.js")
        return HTMLResponse(html, headers=page_headers())

    return [
        Route("/reset-tokens/redeem", redeem_endpoint, methods=["POST"]),
        Route("/reset", landing, methods=["GET"]),
    ]
