"""The receiver's Starlette app: `create_app(services)`, and `app` for `uvicorn receiver.app:app`."""

from __future__ import annotations

import logging

import dramatiq
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from adapters.facesign.client import vendor_metrics
from adapters.queue.broker import SessionEvents, broker_for
from adapters.queue.gauges import QueueCollector
from adapters.status_metrics import status_metrics
from config import Settings
from receiver.dashboard import audit_routes
from receiver.fastpath import FastPathStarlette
from receiver.health import Probes, healthz, metrics_endpoint, readyz_endpoint
from receiver.openapi import openapi_endpoint
from receiver.page import page_routes
from receiver.recoveries import Recoveries
from receiver.reset import reset_routes
from receiver.services import Services
from receiver.webhooks import webhook_endpoint
from usecases.deps import Deps

log = logging.getLogger(__name__)


def build_services(settings: Settings, broker: dramatiq.Broker | None = None) -> Services:
    return Services(
        deps=Deps.from_settings(settings),
        events=SessionEvents(
            broker or broker_for(settings), redis_url=settings.redis_url, max_messages=settings.queue_max_messages
        ),
    )


def create_app(services: Services) -> Starlette:
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
        *reset_routes(services),
    ]
    registry = services.metrics.registry
    if services.events.broker is not None:
        services.metrics.add_collector("queue", QueueCollector(services.events.broker))
    registry.register(vendor_metrics().latency)
    registry.register(vendor_metrics().errors)
    registry.register(status_metrics())  # the embedded reconciler's; empty where none runs in this process
    app = FastPathStarlette(routes=routes)
    app.fast_path("POST", "/webhooks/facesign", webhooks)  # the one route hit at volume: see receiver/fastpath.py
    app.state.services = services
    return app


class _LazyApp:
    """Built from the environment on first use, so importing this module does nothing."""

    def __init__(self) -> None:
        self._app: Starlette | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            settings = Settings.from_env()
            if settings.embedded:
                log.warning(
                    "REDIS_URL is unset and this process runs no worker: use `facesign-recovery serve` "
                    "for embedded mode"
                )
            self._app = create_app(build_services(settings))
        await self._app(scope, receive, send)


app = _LazyApp()
