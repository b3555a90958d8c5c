"""`GET /audit`: the auditors' dashboard. The page is a shell; its data comes from `GET /audit/panel`,
which needs the auditor token that the page keeps in memory only."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from html import escape
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from adapters.db.audit_log import Filters
from domain.rules import REASONS
from receiver.audit_api import BadFilter, auditor_of, decisions_endpoint, parse_filters, unauthorized
from receiver.audit_chart import render_chart, render_legend
from receiver.services import Services
from receiver.templates import template
from usecases import audit

DEFAULT_DAYS = 14
MAX_DAYS = 366
LATEST_ROWS = 50
PANEL_PARAMS = ("since", "until", "outcome", "reason", "sessionId", "attemptId")
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
TABLE_COLUMNS = ("id", "decidedAt", "outcome", "reason", "sessionId", "attemptId", "matchedUserId")


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


def decision_rows(records: list[dict[str, Any]]) -> str:
    out = []
    for record in records:
        cells = "".join(f"<td>{escape('-' if record[c] is None else str(record[c]))}</td>" for c in TABLE_COLUMNS)
        out.append(
            f'<tr data-outcome="{escape(record["outcome"])}">{cells}'
            f"<td><code>{escape(record['hash'][:16])}…</code></td></tr>"
        )
    return "".join(out)


def render_panel(panel: audit.Panel, days: list[date]) -> str:
    chain = panel.chain
    return template("audit_panel.html").substitute(
        chain_class="intact" if chain.ok else "broken",
        chain_text=escape(chain.describe()),
        first_day=days[0].isoformat(),
        last_day=days[-1].isoformat(),
        chart=render_chart(panel.counts, days),
        legend=render_legend(panel.counts),
        shown=len(panel.latest),
        total=sum(panel.counts.values()),
        rows=decision_rows(panel.latest),
    )


class Dashboard:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def page(self, request: Request) -> Response:
        options = "".join(f"<option>{escape(reason)}</option>" for reason in REASONS)
        html = template("audit.html").substitute(reason_options=options, script_url="/audit/dashboard.js")
        return HTMLResponse(html, headers=PAGE_HEADERS)

    async def script(self, request: Request) -> Response:
        body = template("audit.js").substitute(panel_url="/audit/panel")
        return Response(body, media_type="text/javascript", headers={"Cache-Control": "no-store"})

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
        panel = await run_in_threadpool(audit.dashboard_panel, db, auditor, filters, LATEST_ROWS)
        return HTMLResponse(render_panel(panel, days), headers={"Cache-Control": "no-store"})


def audit_routes(services: Services) -> list[Route]:
    """The auditors' routes: the decisions API and the dashboard (its page, script and data)."""
    dashboard = Dashboard(services)
    return [
        Route("/audit/decisions", decisions_endpoint(services), methods=["GET"]),
        Route("/audit", dashboard.page, methods=["GET"]),
        Route("/audit/dashboard.js", dashboard.script, methods=["GET"]),
        Route("/audit/panel", dashboard.panel, methods=["GET"]),
    ]
