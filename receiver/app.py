"""The receiver's Starlette app: `create_app(services)`, and `app` for `uvicorn receiver.app:app`."""

from __future__ import annotations

import logging

import dramatiq
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from adapters.facesign.budget import budget_metrics
from adapters.facesign.client import vendor_metrics
from adapters.logs import redact_server_logs
from adapters.queue.broker import broker_for, session_events
from adapters.queue.coalesce import queue_metrics
from adapters.queue.gauges import QueueCollector
from adapters.status_metrics import status_metrics
from config import ConfigError, Settings
from receiver.dashboard import audit_routes
from receiver.fastpath import FastPathStarlette
from receiver.health import Probes, healthz, metrics_endpoint, readyz_endpoint
from receiver.openapi import openapi_endpoint
from receiver.origins import origin_middleware
from receiver.page import page_routes
from receiver.recoveries import Recoveries
from receiver.reset import reset_routes
from receiver.services import Services
from receiver.webhooks import webhook_endpoint
from usecases.deps import Deps

log = logging.getLogger(__name__)


def build_services(settings: Settings, broker: dramatiq.Broker | None = None) -> Services:
    deps = Deps.from_settings(settings)
    return Services(deps=deps, events=session_events(broker or broker_for(settings), settings, deps.pending))


async def to_recover(_: Request) -> Response:
    # A path-only Location: a redirect built from the Host header would send people wherever it says.
    return RedirectResponse("/recover", status_code=308)


def create_app(services: Services) -> Starlette:
    redact_server_logs()
    recoveries = Recoveries(services)
    webhooks = webhook_endpoint(services)
    probes = Probes()
    routes = [
        Route("/webhooks/facesign", webhooks, methods=["POST"]),
        Route("/recoveries", recoveries.create, methods=["POST"]),
        Route("/recoveries/{attempt_id}", recoveries.status, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz_endpoint(services, probes), methods=["GET"]),
        Route("/metrics", metrics_endpoint(services, probes), methods=["GET"]),
        Route("/openapi.json", openapi_endpoint(), methods=["GET"]),
        *audit_routes(services),
        *page_routes(services),
        Route("/recover/", to_recover, methods=["GET"]),
        *reset_routes(services),
    ]
    registry = services.metrics.registry
    if services.events.broker is not None:
        services.metrics.add_collector("queue", QueueCollector(services.events.broker))
    registry.register(vendor_metrics().latency)
    registry.register(vendor_metrics().errors)
    registry.register(status_metrics())  # the embedded reconciler's; empty where none runs in this process
    budget = budget_metrics()
    for metric in (budget.tokens, budget.waits, budget.wait_seconds, budget.rate_limited):
        registry.register(metric)
    registry.register(queue_metrics().coalesced)
    registry.register(queue_metrics().decision_latency)  # observed here in embedded mode, by workers on Redis
    app = FastPathStarlette(routes=routes, middleware=origin_middleware(services.settings))
    app.router.redirect_slashes = False  # Starlette builds those redirects from the Host header
    app.fast_path("POST", "/webhooks/facesign", webhooks)  # the one route hit at volume: see receiver/fastpath.py
    app.state.services = services
    return app


class _LazyApp:
    """Built from the environment on first use, so importing this module does nothing.

    The first thing a server sends is the lifespan start-up: a configuration error fails it there,
    so the server exits naming the variable instead of answering 500 to every request.
    """

    def __init__(self) -> None:
        self._app: Starlette | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            try:
                self._app = _from_environment()
            except ConfigError as exc:
                if scope["type"] != "lifespan":
                    raise
                await receive()  # lifespan.startup
                await send({"type": "lifespan.startup.failed", "message": f"invalid configuration: {exc}"})
                return
        await self._app(scope, receive, send)


def _from_environment() -> Starlette:
    settings = Settings.from_env()
    settings.check_service()
    if settings.sandbox_mode:
        raise ConfigError("FACESIGN_SANDBOX: the built-in sandbox runs only under `facesign-recovery serve`")
    if settings.embedded:
        log.warning(
            "REDIS_URL is unset and this process runs no worker: use `facesign-recovery serve` for embedded mode"
        )
    return create_app(build_services(settings))


app = _LazyApp()
