"""`GET /recover`, the recovery page a person uses, and the small static files it and `/reset` load.

Server-rendered HTML with one script file and no build step. The Content-Security-Policy allows
scripts, styles and fetches from this origin only, and frames from the FaceSign origin only.
"""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from receiver.services import Services
from receiver.templates import asset as asset_bytes
from receiver.templates import template

ASSETS = {
    "page.css": "text/css; charset=utf-8",
    "audit.css": "text/css; charset=utf-8",  # the auditors' dashboard, on top of page.css
    "recover.js": "text/javascript; charset=utf-8",
    "reset.js": "text/javascript; charset=utf-8",
}


def content_security_policy(frame_origin: str | None = None) -> str:
    directives = [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        f"frame-src {frame_origin}" if frame_origin else "frame-src 'none'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


def page_headers(frame_origin: str | None = None) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": content_security_policy(frame_origin),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }
    if frame_origin:
        # Only the verification frame may ask for the camera and microphone; this page never does.
        headers["Permissions-Policy"] = f'camera=("{frame_origin}"), microphone=("{frame_origin}")'
    return headers


def render(title: str, body: str, values: dict[str, str], script: str) -> str:
    """The layout around one page body; every value is HTML-escaped."""
    inner = template(body).substitute({key: escape(value) for key, value in values.items()})
    scripts = f'<script src="/recover/assets/{escape(script)}" defer></script>'
    return template("layout.html").substitute(title=escape(title), body=inner, scripts=scripts)


def page_routes(services: Services) -> list[Route]:
    settings = services.settings

    async def recover(request: Request) -> Response:
        values = {
            "reset_minutes": str(max(1, settings.reset_token_ttl // 60)),
            "attempt_seconds": str(settings.attempt_ttl),
        }
        html = render("Recover your account", "recover.html", values, "recover.js")
        return HTMLResponse(html, headers=page_headers(settings.frame_origin))

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return Response("not found", status_code=404, media_type="text/plain")
        headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        return Response(asset_bytes(name), media_type=ASSETS[name], headers=headers)

    async def favicon(request: Request) -> Response:
        # Browsers ask for it on every page; a day's caching spares them asking again on each view.
        headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
        return Response(asset_bytes("favicon.ico"), media_type="image/x-icon", headers=headers)

    return [
        Route("/recover", recover, methods=["GET"]),
        Route("/recover/assets/{name}", asset, methods=["GET"]),
        Route("/favicon.ico", favicon, methods=["GET"]),
    ]
