"""The dashboard's data fragment as HTML: the chain's state, the window's aggregates, the latest rows.
Everything from the database is escaped here; the fragment carries no script and no inline style."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from html import escape
from typing import Any

from adapters.db.audit_stats import UserCount
from adapters.db.checkpoints import Checkpoint
from domain.audit_summary import Period, denial_reasons, periods
from domain.rules import APPROVED
from receiver.audit_chart import render_chart, render_legend
from receiver.templates import template
from usecases.audit_verification import ChainStatus
from usecases.audit_views import Durations, Panel

TABLE_COLUMNS = ("decidedAt", "outcome", "reason", "sessionId", "attemptId", "matchedUserId")
DAYS_OPEN = 31  # longer windows show their per-day table folded


def when(checkpoint: Checkpoint) -> str:
    return f"{checkpoint.verified_at:%Y-%m-%d %H:%M} UTC by {checkpoint.verified_by}"


def chain_texts(status: ChainStatus) -> tuple[str, str, str, str]:
    """(class, text) of the incremental check this load made, then of the latest full verification."""
    now = status.incremental
    since = now.since
    if since is None:
        where = "No checkpoint yet, so every row was checked: "
    else:
        where = f"Rows after checkpoint {since.id} (row {since.head_id}, {since.kind}, {when(since)}): "
    if now.verdict.ok:
        found = f"{now.rows} new, {now.verdict.describe()}" if since else now.verdict.describe()
    else:
        found = now.verdict.describe()
    full = status.last_full
    if full is None:
        full_class, full_text = "unknown", "No full verification recorded yet: run `facesign-recovery audit verify`."
    else:
        full_class = "intact" if full.ok else "broken"
        full_text = f"Last full verification: {when(full)}, took {full.seconds:.1f} s: {full.detail}"
    return "intact" if now.verdict.ok else "broken", escape(where + found), full_class, escape(full_text)


def rate(approved: int, total: int) -> str:
    return f"{100 * approved / total:.1f} %" if total else "–"


def period_table(rows: Sequence[Period], reasons: Sequence[str], label: str, table_id: str, caption: str) -> str:
    head = "".join(f'<th scope="col" class="num">{escape(r)}</th>' for r in reasons)
    body = []
    for p in rows:
        cells = "".join(f'<td class="num">{p.denied.get(r, 0)}</td>' for r in reasons)
        body.append(
            f'<tr data-start="{p.start.isoformat()}"><th scope="row">{p.start.isoformat()}</th>'
            f'<td class="num">{p.total}</td><td class="num">{p.approved}</td>'
            f'<td class="num">{rate(p.approved, p.total)}</td>{cells}</tr>'
        )
    return (
        f'<table id="{table_id}"><caption>{escape(caption)}</caption><thead><tr><th scope="col">{escape(label)}</th>'
        '<th scope="col" class="num">decisions</th><th scope="col" class="num">approved</th>'
        f'<th scope="col" class="num">approval rate</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def users_table(users: Sequence[UserCount]) -> str:
    if not users:
        return "<p>No decision in this window matched a local user.</p>"
    rows = "".join(
        f'<tr><td><code>{escape(u.user_id)}</code></td><td class="num">{u.attempts}</td>'
        f'<td class="num">{u.approved}</td><td class="num">{u.attempts - u.approved}</td>'
        f"<td>{u.last:%Y-%m-%d %H:%M}</td></tr>"
        for u in users
    )
    return (
        '<table id="top-users"><thead><tr><th scope="col">matched user</th><th scope="col" class="num">decisions</th>'
        '<th scope="col" class="num">approved</th><th scope="col" class="num">denied</th>'
        f'<th scope="col">last (UTC)</th></tr></thead><tbody>{rows}</tbody></table>'
    )


def seconds(value: int | None) -> str:
    if value is None:
        return "–"
    return f"{value} s" if value < 120 else f"{value // 60} min {value % 60} s"


def durations_text(durations: Durations) -> str:
    if not durations.count:
        return "No decision in this window."
    return (
        f"Over {durations.count} decisions: median {seconds(durations.p50)}, 95th percentile "
        f"{seconds(durations.p95)} (to the nearest second, from the attempt's creation to its decision)."
    )


def decision_rows(records: Sequence[dict[str, Any]]) -> str:
    out = []
    for record in records:
        cells = "".join(f"<td>{escape('-' if record[c] is None else str(record[c]))}</td>" for c in TABLE_COLUMNS)
        row_id = int(record["id"])
        out.append(
            f'<tr data-outcome="{escape(record["outcome"])}"><td><a href="#decision={row_id}" '
            f'aria-label="decision {row_id}, explained">{row_id}</a></td>{cells}'
            f"<td><code>{escape(record['hash'][:16])}…</code></td></tr>"
        )
    return "".join(out)


def render_panel(panel: Panel, days: list[date]) -> str:
    chain_class, chain_text, full_class, full_text = chain_texts(panel.chain)
    reasons = denial_reasons(panel.counts)
    total = sum(panel.counts.values())
    approved = sum(n for (_, outcome, _), n in panel.counts.items() if outcome == APPROVED)
    return template("audit_panel.html").substitute(
        chain_class=chain_class,
        chain_text=chain_text,
        full_class=full_class,
        full_text=full_text,
        first_day=days[0].isoformat(),
        last_day=days[-1].isoformat(),
        total=total,
        approval_rate=rate(approved, total),
        p50=seconds(panel.durations.p50),
        p95=seconds(panel.durations.p95),
        chart=render_chart(panel.counts, days),
        legend=render_legend(panel.counts),
        weeks=period_table(
            periods(panel.counts, days, weekly=True),
            reasons,
            "week from",
            "per-week",
            "Per ISO week (Monday to Sunday)",
        ),
        days=period_table(periods(panel.counts, days), reasons, "day", "per-day", "Per UTC day; denials by reason"),
        days_open=" open" if len(days) <= DAYS_OPEN else "",
        durations_text=escape(durations_text(panel.durations)),
        users=users_table(panel.users),
        shown=len(panel.latest),
        rows=decision_rows(panel.latest),
    )
