"""Liveness, readiness and metrics."""

from __future__ import annotations

import hmac
import logging
from ipaddress import ip_address

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from receiver.services import Services

log = logging.getLogger(__name__)


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


def readyz_endpoint(services: Services):  # type: ignore[no-untyped-def]
    def check() -> list[str]:
        failed = []
        for name, probe in (("database", services.deps.db.ping), ("broker", services.events.ping)):
            try:
                probe()
            except Exception as exc:  # any failure means "not ready"; the kind goes to the log
                log.warning("readiness: %s failed: %s", name, type(exc).__name__)
                failed.append(name)
        return failed

    async def readyz(_: Request) -> Response:
        failed = await run_in_threadpool(check)
        if failed:
            return JSONResponse({"status": "unavailable", "failed": failed}, status_code=503)
        return JSONResponse({"status": "ready"})

    return readyz


def from_loopback(request: Request) -> bool:
    """The (proxy-resolved) client is this host. Behind a proxy on loopback, the proxy must send
    X-Forwarded-For, or every outside client would look local."""
    try:
        return request.client is not None and ip_address(request.client.host).is_loopback
    except ValueError:
        return False  # a unix socket or a test client's made-up name: not provably local


def carries_token(request: Request, token: str | None) -> bool:
    if not token:
        return False
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def metrics_endpoint(services: Services):  # type: ignore[no-untyped-def]
    token = services.settings.metrics_token

    async def metrics(request: Request) -> Response:
        # Operators only: the counts say why faces are refused, which helps whoever tunes a deepfake.
        # Everyone else is told there is nothing here.
        if not (from_loopback(request) or carries_token(request, token)):
            return Response("not found", status_code=404, media_type="text/plain")
        body = await run_in_threadpool(services.metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    return metrics
