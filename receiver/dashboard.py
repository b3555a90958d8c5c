"""`GET /audit`: the auditors' dashboard. The page is a shell in the recovery page's style
(its style sheet, audit.css, is served with page.css); its data comes
from `GET /audit/panel` (a window's aggregates), `GET /audit/panel/decisions/{id}` (one decision explained)
and `GET /audit/export` (the filters' records as CSV or JSON lines), which need the auditor token that
the page keeps in memory only."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from html import escape

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from adapters.db.audit_log import Filters
from domain.rules import REASONS
from receiver.audit_api import BadFilter, auditor_of, decisions_endpoint, parse_filters, unauthorized
from receiver.audit_decision import decision_endpoint
from receiver.audit_panel import render_panel
from receiver.services import Services
from receiver.templates import template
from usecases import audit_views
from usecases.audit_export import export_chunks

DEFAULT_DAYS = 14
MAX_DAYS = 366
LATEST_ROWS = 50
PANEL_PARAMS = ("since", "until", "outcome", "reason", "sessionId", "attemptId")
EXPORTS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8"}
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
    "img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
NO_STORE = {"Cache-Control": "no-store"}


def window(filters: Filters, now: datetime) -> tuple[Filters, list[date]]:
    """The days the chart covers: the filters' range, or the last DEFAULT_DAYS days."""
    try:
        until = filters.until or datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), UTC)
        since = filters.since or until - timedelta(days=DEFAULT_DAYS)
        first, last = since.date(), (until - timedelta(microseconds=1)).date()
    except OverflowError:  # a range reaching before year 1 or after 9999
        raise BadFilter("since/until: the dashboard covers years 1 to 9999 only") from None
    if first > last:
        raise BadFilter("since must be earlier than until")
    if (last - first).days + 1 > MAX_DAYS:
        raise BadFilter(f"the dashboard shows at most {MAX_DAYS} days; narrow since/until")
    return replace(filters, since=since, until=until), [
        first + timedelta(days=n) for n in range((last - first).days + 1)
    ]


class Dashboard:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def page(self, request: Request) -> Response:
        options = "".join(f"<option>{escape(reason)}</option>" for reason in REASONS)
        body = template("audit.html").substitute(reason_options=options)
        html = template("audit_layout.html").substitute(body=body, script_url="/audit/dashboard.js")
        return HTMLResponse(html, headers=PAGE_HEADERS)

    async def script(self, request: Request) -> Response:
        body = template("audit.js").substitute(panel_url="/audit/panel", export_url="/audit/export")
        return Response(body, media_type="text/javascript", headers=NO_STORE)

    async def panel(self, request: Request) -> Response:
        auditor = await auditor_of(self.services, request)
        if auditor is None:
            return unauthorized()
        params = {k: v for k, v in request.query_params.items() if k in PANEL_PARAMS}
        try:
            filters, days = window(parse_filters(params), datetime.now(UTC))
        except BadFilter as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        db = self.services.deps.db
        panel = await run_in_threadpool(audit_views.dashboard_panel, db, auditor, filters, LATEST_ROWS)
        return HTMLResponse(render_panel(panel, days), headers=NO_STORE)

    async def export(self, request: Request) -> Response:
        """Every record the filters match, oldest first, streamed: the dashboard's export buttons."""
        auditor = await auditor_of(self.services, request)
        if auditor is None:
            return unauthorized()
        fmt = request.query_params.get("format", "csv")
        params = {k: v for k, v in request.query_params.items() if k in PANEL_PARAMS}
        try:
            if fmt not in EXPORTS:
                raise BadFilter(f"format: csv or jsonl, not {fmt!r}")
            filters = parse_filters(params)
        except BadFilter as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        name = f"decisions-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.{fmt}"
        headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'}
        chunks = await run_in_threadpool(export_chunks, self.services.deps.db, auditor, filters, fmt)
        return StreamingResponse(chunks, media_type=EXPORTS[fmt], headers=headers)


def audit_routes(services: Services) -> list[Route]:
    """The auditors' routes: the decisions API and the dashboard (its page, assets and data)."""
    dashboard = Dashboard(services)
    return [
        Route("/audit/decisions", decisions_endpoint(services), methods=["GET"]),
        Route("/audit/decisions/{decision_id}", decision_endpoint(services), methods=["GET"]),
        Route("/audit", dashboard.page, methods=["GET"]),
        Route("/audit/dashboard.js", dashboard.script, methods=["GET"]),
        Route("/audit/panel", dashboard.panel, methods=["GET"]),
        Route("/audit/panel/decisions/{decision_id}", decision_endpoint(services, html=True), methods=["GET"]),
        Route("/audit/export", dashboard.export, methods=["GET"]),
    ]
