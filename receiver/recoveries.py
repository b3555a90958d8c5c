"""`POST /recoveries` and `GET /recoveries/{id}`: start an attempt, report its status (never its reason)."""

from __future__ import annotations

import json
import logging
import re
import secrets
from datetime import UTC, datetime

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.attempts import PENDING, as_utc, create_attempt, get_attempt
from adapters.db import transaction
from adapters.facesign import FaceSignError
from domain.audit_chain import format_time
from receiver.services import Services

log = logging.getLogger(__name__)

KINDS = ("forgot_password",)
ATTEMPT_ID = re.compile(r"[A-Za-z0-9_-]+")
MAX_BODY = 4096


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def rate_limit_storage(redis_url: str | None) -> Storage:
    """In memory in embedded mode; with Redis, every receiver process shares one limit per address."""
    if redis_url is None:
        return MemoryStorage()
    return RedisStorage(
        redis_url, key_prefix="facesign-recovery:ratelimit", socket_timeout=2.0, socket_connect_timeout=2.0
    )


class Recoveries:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.limit = RateLimitItemPerMinute(services.settings.recoveries_per_minute)
        self.limiter = MovingWindowRateLimiter(rate_limit_storage(services.settings.redis_url))

    async def create(self, request: Request) -> Response:
        address = client_address(request)
        if not await run_in_threadpool(self._allowed, address):  # with Redis this is a network call
            reset_at, _ = await run_in_threadpool(self.limiter.get_window_stats, self.limit, "recoveries", address)
            retry_after = max(1, int(reset_at - datetime.now(UTC).timestamp()) + 1)
            return _error(429, "too many recoveries started; try again later", {"Retry-After": str(retry_after)})
        body = await request.body()
        kind = "forgot_password"
        if body.strip():
            try:
                payload = json.loads(body) if len(body) <= MAX_BODY else None
            except (ValueError, UnicodeDecodeError):
                payload = None
            if not isinstance(payload, dict):
                return _error(400, "body must be a JSON object")
            kind = payload.get("type", kind)
            if kind not in KINDS:
                return _error(400, f"type must be one of: {', '.join(KINDS)}")
        try:
            attempt = await run_in_threadpool(self._start, kind)
        except FaceSignError as exc:
            log.warning("could not create a FaceSign session: %s", exc)
            return _error(503, "verification service unavailable, try again shortly", {"Retry-After": "5"})
        return JSONResponse(attempt, status_code=201)

    def _allowed(self, address: str) -> bool:
        try:
            return self.limiter.hit(self.limit, "recoveries", address)
        except RedisError as exc:
            # The limit guards against abuse; an outage of its store must not stop people recovering.
            log.warning("rate limit store unavailable, letting the request through: %s", exc)
            return True

    def _start(self, kind: str) -> dict[str, str]:
        services = self.services
        attempt_id = secrets.token_urlsafe(24)  # 192 random bits: unguessable, never sequential
        now = datetime.now(UTC)
        answer = services.facesign.create_session(
            attempt_id, {"recoveryType": kind, "requestedAt": format_time(now)}, services.flow
        )
        session_id = answer["session"]["id"]
        url = answer["clientSecret"]["url"]
        with transaction(services.sessions) as session:
            attempt = create_attempt(
                session, attempt_id, session_id, services.flow, url, now, services.settings.attempt_ttl, kind
            )
            expires_at = attempt.expires_at
        log.info("recovery %s started with session %s", attempt_id, session_id)
        return {"id": attempt_id, "url": url, "expiresAt": format_time(expires_at)}

    async def status(self, request: Request) -> Response:
        attempt_id = request.path_params["attempt_id"]
        status = await run_in_threadpool(self._status, attempt_id)
        if status is None:
            return _error(404, "not found")
        return JSONResponse({"id": attempt_id, "status": status}, headers={"Cache-Control": "no-store"})

    def _status(self, attempt_id: str) -> str | None:
        # Our ids are URL-safe base64; anything else (a NUL byte breaks PostgreSQL) is simply unknown.
        if len(attempt_id) > 64 or not ATTEMPT_ID.fullmatch(attempt_id):
            return None
        with self.services.sessions() as session:
            attempt = get_attempt(session, attempt_id)
            if attempt is None:
                return None
            if attempt.status == PENDING and as_utc(attempt.expires_at) < datetime.now(UTC):
                return "expired"  # the reconciler records the decision; the page need not wait for it
            return attempt.status
