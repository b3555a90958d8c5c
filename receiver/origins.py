"""Which web pages' scripts may call this service: its own, and those listed in ALLOWED_ORIGINS.

A browser names the page behind a script's request in `Origin`. A request naming any other origin
is refused before it reaches a route, so no page elsewhere can make its visitors start recoveries
(each costs a FaceSign session) or redeem tokens. Requests without `Origin` (servers, curl, plain
navigation) pass: they are not a visitor's browser acting for someone else. Starlette's
CORSMiddleware, outside this guard, answers the listed origins' preflight requests.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from config import Settings

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def own_origins(public_base_url: str) -> frozenset[str]:
    """This service's origin; on loopback also its other spellings (a demo opened as localhost)."""
    parts = urlsplit(public_base_url)
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return frozenset({origin})
    port = f":{parts.port}" if parts.port else ""
    return frozenset({origin, *(f"{parts.scheme}://{name}{port}" for name in LOOPBACK_NAMES)})


class OriginGuard:
    """Pure ASGI (no per-request task or Request object): one header lookup per request."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"origin" and value.decode("latin-1").lower() not in self.allowed:
                    response = JSONResponse({"error": "cross-origin request refused"}, status_code=403)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def origin_middleware(settings: Settings) -> list[Middleware]:
    listed = settings.allowed_origins
    cors = Middleware(
        CORSMiddleware,
        allow_origins=list(listed),
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type"],
        max_age=600,
    )
    return [cors, Middleware(OriginGuard, allowed=own_origins(settings.public_base_url) | set(listed))]
