"""Liveness, readiness and metrics: answered on threads of their own, within a deadline, whatever else waits.

Vendor calls (`POST /recoveries`) and page handlers use other threads, so a slow FaceSign or a busy
audit export never queues a probe; and each readiness check has a deadline, so a hung database or
Redis answers "not ready" in about a second instead of holding the probe.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from ipaddress import ip_address
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from receiver.services import Services

log = logging.getLogger(__name__)

READY_DEADLINE = 1.5  # seconds each readiness check may take
PROBE_THREADS = 8  # readiness and metrics at once, apart from every other request's threads


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


class Probes:
    """The threads probes run on: a limiter of their own (anyio's default one is every other request's)."""

    def __init__(self) -> None:
        self.limiter = anyio.CapacityLimiter(PROBE_THREADS)

    async def run(self, function: Callable[[], Any], deadline: float | None = None) -> Any:
        """`function` on a probe thread; with a deadline, TimeoutError when it has not answered by then
        (the thread is left to finish on its own; its own timeouts end it)."""
        if deadline is None:
            return await anyio.to_thread.run_sync(function, limiter=self.limiter)
        with anyio.fail_after(deadline):
            return await anyio.to_thread.run_sync(function, limiter=self.limiter, abandon_on_cancel=True)


def readyz_endpoint(services: Services, probes: Probes):  # type: ignore[no-untyped-def]
    checks: dict[str, Callable[[], Any]] = {
        "database": lambda: services.deps.db.ping(timeout=READY_DEADLINE),
        "broker": services.events.ping,
    }

    async def check(name: str, probe: Callable[[], Any], failed: dict[str, str]) -> None:
        try:
            await probes.run(probe, READY_DEADLINE)
        except Exception as exc:  # any failure means "not ready"; the kind goes to the log
            reason = "no answer in time" if isinstance(exc, TimeoutError) else type(exc).__name__
            log.warning("readiness: %s failed: %s (%s)", name, reason, exc)
            failed[name] = reason

    async def readyz(_: Request) -> Response:
        failed: dict[str, str] = {}
        async with anyio.create_task_group() as group:
            for name, probe in checks.items():
                group.start_soon(check, name, probe, failed)
        if failed:
            names = [name for name in checks if name in failed]
            return JSONResponse({"status": "unavailable", "failed": names}, status_code=503)
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


def metrics_endpoint(services: Services, probes: Probes):  # type: ignore[no-untyped-def]
    token = services.settings.metrics_token

    async def metrics(request: Request) -> Response:
        # Operators only: the counts say why faces are refused, which helps whoever tunes a deepfake.
        # Everyone else is told there is nothing here.
        if not (from_loopback(request) or carries_token(request, token)):
            return Response("not found", status_code=404, media_type="text/plain")
        body = await probes.run(services.metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    return metrics
