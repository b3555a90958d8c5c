"""`POST /recoveries` and `GET /recoveries/{id}`: start an attempt, report its status (never its reason)."""

from __future__ import annotations

import json
import logging
import math
import re
from datetime import UTC, datetime
from functools import partial

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.db.engine import DatabaseUnavailable
from adapters.facesign.client import BudgetExhausted, FaceSignError
from adapters.ratelimit import PerMinute
from receiver.bodies import BodyError, json_body
from receiver.services import Services
from receiver.vendor_calls import Busy, VendorCalls
from usecases.recoveries import KINDS, recovery_status, start_recovery

log = logging.getLogger(__name__)

ATTEMPT_ID = re.compile(r"[A-Za-z0-9_-]+")
MAX_BODY = 4096
RETRY_AFTER = {"Retry-After": "5"}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class Recoveries:
    def __init__(self, services: Services) -> None:
        self.services = services
        settings = services.settings
        self.per_address = PerMinute("recoveries", settings.recoveries_per_minute, settings.redis_url)
        # All clients together: behind a shared proxy one address could otherwise spend the vendor budget.
        self.everyone = PerMinute("recoveries-total", settings.recoveries_per_minute_total, settings.redis_url)
        self.vendor = VendorCalls(settings.recovery_start_concurrency, settings.recovery_start_timeout)
        self.refused = services.metrics.recovery_starts_refused

    async def create(self, request: Request) -> Response:
        address = client_address(request)
        retry_after = await run_in_threadpool(self._hit, address)  # with Redis, a network call
        if retry_after is not None:
            return _error(429, "too many recoveries started; try again later", {"Retry-After": str(retry_after)})
        try:
            body = await json_body(request, MAX_BODY, self.services.settings.body_read_timeout)
        except BodyError as exc:
            return exc.response()
        kind = "forgot_password"
        if body.strip():
            try:
                payload = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                payload = None
            if not isinstance(payload, dict):
                return _error(400, "body must be a JSON object")
            kind = payload.get("type", kind)
            if kind not in KINDS:
                return _error(400, f"type must be one of: {', '.join(KINDS)}")
        deps, now = self.services.deps, datetime.now(UTC)
        try:
            started = await self.vendor.run(partial(start_recovery, deps, kind, now, client=address))
        except Busy:
            self.refused.labels("busy").inc()
            log.warning("recovery not started: every FaceSign slot stayed busy for the whole budget")
            return _error(503, "verification service busy, try again shortly", RETRY_AFTER)
        except BudgetExhausted as exc:
            # FaceSign's budget is spent even for people: say when to come back rather than keep them waiting.
            self.refused.labels("budget").inc()
            log.warning("no FaceSign budget to start a recovery for %.1f s", exc.retry_after)
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
            return _error(503, "too many recoveries in progress, try again shortly", headers)
        except FaceSignError as exc:
            self.refused.labels("vendor").inc()
            log.warning("could not create a FaceSign session: %s", exc)
            return _error(503, "verification service unavailable, try again shortly", RETRY_AFTER)
        except DatabaseUnavailable as exc:
            self.refused.labels("database").inc()
            log.warning("recovery not started: database unavailable (%s)", exc)
            return _error(503, "service unavailable, try again shortly", RETRY_AFTER)
        return JSONResponse(started, status_code=201)

    def _hit(self, address: str) -> int | None:
        """Seconds to wait, or None: this address's limit first, then everyone's."""
        return self.per_address.hit(address) or self.everyone.hit("all")

    async def status(self, request: Request) -> Response:
        attempt_id = request.path_params["attempt_id"]
        # Our ids are URL-safe base64; anything else (a NUL byte breaks PostgreSQL) is simply unknown.
        status = None
        if len(attempt_id) <= 64 and ATTEMPT_ID.fullmatch(attempt_id):
            try:
                status = await run_in_threadpool(recovery_status, self.services.deps, attempt_id, datetime.now(UTC))
            except DatabaseUnavailable:
                return _error(503, "service unavailable, try again shortly", RETRY_AFTER)
        if status is None:
            return _error(404, "not found")
        return JSONResponse({"id": attempt_id, "status": status}, headers={"Cache-Control": "no-store"})
