"""Liveness, readiness and metrics."""

from __future__ import annotations

import logging

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


def metrics_endpoint(services: Services):  # type: ignore[no-untyped-def]
    async def metrics(_: Request) -> Response:
        body = await run_in_threadpool(services.metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    return metrics
