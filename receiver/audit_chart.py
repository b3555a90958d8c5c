"""Decisions per day, stacked by reason, as a self-contained SVG (no scripts, no external assets)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date
from html import escape

from domain.rules import REASONS

# Approval in green, each denial reason in its own warm or grey shade, fixed so that charts compare.
COLOURS = {
    "verified": "#2e7d32",
    "attempt_expired": "#9e9e9e",
    "reference_mismatch": "#6d4c41",
    "session_not_complete": "#bdbdbd",
    "no_face": "#ffb74d",
    "face_not_recognized": "#f57c00",
    "deepfake_detected": "#b71c1c",
    "liveness_failed": "#e53935",
    "matched_face_has_no_local_user": "#8e24aa",
    "account_recovery_locked": "#4e342e",
    "identity_not_confirmed": "#3949ab",
}
OTHER = "#546e7a"
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 240, 40, 28, 10


def reason_order(counts: Counter[tuple[date, str, str]]) -> list[str]:
    seen = {reason for _, _, reason in counts}
    return [r for r in REASONS if r in seen] + sorted(seen - set(REASONS))


def render_chart(counts: Counter[tuple[date, str, str]], days: Sequence[date]) -> str:
    reasons = reason_order(counts)
    per_day = {day: Counter[str]() for day in days}
    for (day, _outcome, reason), n in counts.items():
        if day in per_day:
            per_day[day][reason] += n
    peak = max((sum(c.values()) for c in per_day.values()), default=0) or 1
    plot_w, plot_h = WIDTH - LEFT - 10, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(days), 1)
    bar = max(slot * 0.7, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="Decisions per day by reason" id="decisions-chart">',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 10}" y2="{TOP + plot_h}" stroke="#444"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end" font-size="10">{peak}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end" font-size="10">0</text>',
    ]
    label_every = max(1, len(days) // 10)
    for index, day in enumerate(days):
        x = LEFT + index * slot + (slot - bar) / 2
        y = float(TOP + plot_h)
        for reason in reasons:
            n = per_day[day][reason]
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            parts.append(
                f'<rect class="bar" data-day="{day.isoformat()}" data-reason="{escape(reason)}" data-count="{n}" '
                f'x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS.get(reason, OTHER)}"><title>{day.isoformat()} {escape(reason)}: {n}</title></rect>'
            )
        if index % label_every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - 10}" text-anchor="middle" font-size="10">'
                f"{day.strftime('%m-%d')}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def render_legend(counts: Counter[tuple[date, str, str]]) -> str:
    totals: Counter[tuple[str, str]] = Counter()
    for (_day, outcome, reason), n in counts.items():
        totals[(outcome, reason)] += n
    rows = []
    for reason in reason_order(counts):
        for outcome in sorted({o for o, r in totals if r == reason}):
            swatch = (  # an SVG fill, not a style attribute: the page's CSP allows no inline style
                '<svg class="swatch" width="12" height="12" aria-hidden="true">'
                f'<rect width="12" height="12" fill="{COLOURS.get(reason, OTHER)}"/></svg>'
            )
            rows.append(
                f'<tr data-outcome="{escape(outcome)}" data-reason="{escape(reason)}">'
                f"<td>{swatch}{escape(outcome)}</td><td>{escape(reason)}</td>"
                f"<td class=num>{totals[(outcome, reason)]}</td></tr>"
            )
    return "".join(rows)
