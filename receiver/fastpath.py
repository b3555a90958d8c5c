"""A Starlette app that hands one hot route straight to its ASGI endpoint.

FaceSign's webhooks are the only requests that arrive at volume. Starlette's middleware stack
and router cost about as much per request as verifying and enqueueing the webhook (they build a
Request in the exception middleware and try each route in turn), so an exact match of method
and path skips them; everything else, including other methods on the same path, goes through
Starlette as usual. Exceptions from the hot endpoint reach the server, which answers 500.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send


class FastPathStarlette(Starlette):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fast: dict[tuple[str, str], ASGIApp] = {}

    def fast_path(self, method: str, path: str, endpoint: ASGIApp) -> None:
        self._fast[(method, path)] = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self._fast.get((scope["method"], scope["path"]))
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
