"""One decision explained: `GET /audit/decisions/{id}` (JSON) and the dashboard's fragment for it (HTML).

Both show only what the row holds, the flow recorded on its attempt, the rules in words, the row's links
in the chain and who opened it: never an email, a name or an image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from domain.explain import Path
from domain.flow import targets
from domain.rules import APPROVED, RULES_VERSION
from domain.times import format_time
from receiver.audit_api import NO_STORE, auditor_of, unauthorized
from receiver.services import Services
from receiver.templates import template
from usecases.audit_views import DecisionDetail, decision_detail

MAX_ID = 2**63 - 1
NOT_FOUND = {"error": "no decision with that id"}


def rule_json(detail: DecisionDetail) -> dict[str, Any] | None:
    rule = detail.rule
    if rule is None:
        return None
    return {
        "position": detail.rules.index(rule) + 1,
        "of": len(detail.rules),
        "reason": rule.reason,
        "outcome": rule.outcome,
        "condition": rule.condition,
        "readsNode": rule.reads,
        "rulesVersion": detail.record["rulesVersion"],
        "currentRulesVersion": RULES_VERSION,
    }


def decision_json(detail: DecisionDetail) -> dict[str, Any]:
    place, covered = detail.chain, detail.chain.covered_by
    return {
        "decision": detail.record,
        "rule": rule_json(detail),
        "flow": detail.flow,
        "path": {
            "steps": [
                {
                    "nodeId": s.node_id,
                    "type": s.kind,
                    "outcome": s.outcome,
                    "readByRules": s.read_by_rules,
                    "decided": s.node_id in detail.deciding_nodes,
                }
                for s in detail.path.steps
            ],
            "complete": detail.path.complete,
            "summary": detail.path.describe(),
        },
        "chain": {
            "prevHash": detail.record["prevHash"],
            "hash": detail.record["hash"],
            "previousRowHash": place.previous_hash,
            "linksToPrevious": place.links_back,
            "hashMatchesContent": place.content_matches,
            "nextRowLinks": place.next_links,
            "verifies": place.verifies,
            "coveredByCheckpoint": None
            if covered is None
            else {
                "id": covered.id,
                "headId": covered.head_id,
                "kind": covered.kind,
                "verifiedAt": format_time(covered.verified_at),
                "verifiedBy": covered.verified_by,
            },
        },
        "secondsToDecision": detail.seconds_to_decision,
        "accessLog": [{"at": format_time(a.at), "auditor": a.auditor, "action": a.action} for a in detail.accesses],
    }


def _flow_html(flow: Sequence[Mapping[str, Any]] | None, path: Path, deciding: frozenset[str]) -> str:
    if not flow:
        return "<p>No flow was recorded on this attempt, so only the outcomes above are known.</p>"
    left_by = {node: (target, outcome) for node, target, outcome in path.edges}
    on_path = {step.node_id for step in path.steps}
    items = []
    for node in flow:
        node_id = str(node.get("id"))
        classes = " ".join(
            c for c in ("on-path" if node_id in on_path else "", "decisive" * (node_id in deciding)) if c
        )
        items.append(
            f'<li class="{classes}" data-node="{escape(node_id)}"><strong>{escape(node_id)}</strong>'
            f'<span class="kind">{escape(str(node.get("type")))}{_state(node_id, on_path, deciding)}</span>'
            f"{_outcomes_html(node, left_by.get(node_id))}</li>"
        )
    return f'<ol class="flow" id="flow">{"".join(items)}</ol>'


def _state(node_id: str, on_path: set[str], deciding: frozenset[str]) -> str:
    if node_id in deciding:
        return " (on this session's path; its outcome led to the decision)"
    return " (on this session's path)" if node_id in on_path else ""


def _outcomes_html(node: Mapping[str, Any], left: tuple[str, str | None] | None) -> str:
    """The node's outcomes, the one the session left by marked; when the row does not say which one it
    was (every outcome leads to the same node), that is said rather than guessed."""
    pairs = _outcomes(node)
    target, outcome = left or (None, None)
    unique = target is not None and outcome is None and len(pairs) == 1
    lines = []
    for label, to in pairs:
        taken = left is not None and to == target and (label == outcome or unique)
        css = ' class="taken"' if taken else ""
        lines.append(f"<li{css}>{escape(label)} → {escape(to)}</li>")
    if target is not None and outcome is None and not unique:
        lines.append(f'<li class="taken">(outcome not recorded) → {escape(target)}</li>')
    return f"<ul>{''.join(lines)}</ul>" if lines else ""


def _outcomes(node: Mapping[str, Any]) -> list[tuple[str, str]]:
    outcomes = node.get("outcomes")
    if isinstance(outcomes, Mapping):
        return [(str(k), str(v)) for k, v in outcomes.items()]
    if isinstance(outcomes, list):
        return [(str(o.get("id")), str(o.get("targetNodeId"))) for o in outcomes if isinstance(o, Mapping)]
    return [("next", t) for t in targets(node)]


def _rules_html(detail: DecisionDetail) -> str:
    rows, before = [], True
    for number, rule in enumerate(detail.rules, 1):
        decided = rule is detail.rule
        before = before and not decided
        css, verdict = (
            ("decided", "decided it") if decided else ("passed", "did not match") if before else ("", "not tried")
        )
        rows.append(
            f'<tr class="{css}" data-reason="{escape(rule.reason)}"><td>{number}</td><td>{escape(rule.condition)}</td>'
            f"<td>{escape(rule.outcome)}</td><td><code>{escape(rule.reason)}</code></td><td>{verdict}</td></tr>"
        )
    return "".join(rows)


def _yes(value: bool | None, yes: str, no: str, unknown: str = "") -> str:
    if value is None:
        return escape(unknown)
    return f'<span class="yes">{escape(yes)}</span>' if value else f'<span class="no">{escape(no)}</span>'


def _chain_html(detail: DecisionDetail) -> str:
    place, record = detail.chain, detail.record
    row_id = int(record["id"])
    covered = place.covered_by
    entries = [
        ("prevHash", f"<code>{escape(record['prevHash'])}</code>"),
        ("hash", f"<code>{escape(record['hash'])}</code>"),
        (
            f"row {row_id - 1}'s hash" if row_id > 1 else "before row 1",
            f"<code>{escape(place.previous_hash or '(gone)')}</code>",
        ),
        ("links back", _yes(place.links_back, "yes: prevHash is the previous row's hash", "no")),
        (
            "content",
            _yes(
                place.content_matches, "the hash recomputed from the fields matches", "the fields do not give this hash"
            ),
        ),
        (
            "next row",
            _yes(
                place.next_links,
                f"row {row_id + 1} links to this hash",
                f"row {row_id + 1} does not link to it",
                "none yet: this is the newest row",
            ),
        ),
        (
            "checkpoint",
            escape(
                f"covered by checkpoint {covered.id} ({covered.kind}, up to row {covered.head_id}, "
                f"{covered.verified_at:%Y-%m-%d %H:%M} UTC)"
                if covered
                else "not yet covered by a checkpoint"
            ),
        ),
    ]
    return "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in entries)


def _summary(detail: DecisionDetail) -> str:
    record = detail.record
    timing = (
        f" {detail.seconds_to_decision:.0f} s after the attempt started"
        if detail.seconds_to_decision is not None
        else ""
    )
    return f"{record['outcome'].capitalize()} ({record['reason']}) at {record['decidedAt']}{timing}."


def render_decision(detail: DecisionDetail) -> str:
    record, rule, place = detail.record, detail.rule, detail.chain
    rule_text = (
        f"Rule {detail.rules.index(rule) + 1} of {len(detail.rules)}: {rule.outcome} as {rule.reason}, because "
        f"{rule.condition}. The rules before it did not match."
        if rule
        else f"The reason {record['reason']!r} is not in this version's rules table."
    )
    version = record["rulesVersion"]
    note = "" if version == RULES_VERSION else f" (this decision: rules version {version}; the table: {RULES_VERSION})"
    fields = "".join(
        f"<dt>{escape(k)}</dt><dd>{'<em>null</em>' if v is None else f'<code>{escape(str(v))}</code>'}</dd>"
        for k, v in record.items()
    )
    accesses = "".join(
        f"<tr><td>{format_time(a.at)}</td><td>{escape(a.auditor)}</td><td>{escape(a.action)}</td></tr>"
        for a in detail.accesses
    )
    verifies = "This row verifies: " if place.verifies else "This row does NOT verify: "
    return template("audit_decision.html").substitute(
        id=int(record["id"]),
        outcome=escape(record["outcome"]),
        reason=escape(record["reason"]),
        outcome_class="intact" if record["outcome"] == APPROVED else "broken",
        summary=escape(_summary(detail)),
        rule_text=escape(rule_text),
        rules_note=escape(note),
        rules=_rules_html(detail),
        path_text=escape(detail.path.describe() or "No path: the attempt has no recorded flow."),
        flow=_flow_html(detail.flow, detail.path, detail.deciding_nodes),
        verifies_class="intact" if place.verifies else "broken",
        verifies_text=escape(verifies + "its link back, its content and the next row's link were checked."),
        chain=_chain_html(detail),
        fields=fields,
        accesses=f'<table id="access-log"><thead><tr><th scope="col">at (UTC)</th><th scope="col">auditor</th>'
        f'<th scope="col">action</th></tr></thead><tbody>{accesses}</tbody></table>',
    )


def decision_id_of(request: Request) -> int | None:
    """The path's id when it is one (a chain position); anything else is answered like an unknown id."""
    raw = request.path_params["decision_id"]
    if not (isinstance(raw, str) and raw.isascii() and raw.isdigit()):
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_ID else None


def decision_endpoint(services: Services, html: bool = False) -> Callable[[Request], Any]:
    async def decision(request: Request) -> Response:
        auditor = await auditor_of(services, request)
        if auditor is None:
            return unauthorized()
        decision_id = decision_id_of(request)
        detail = (
            await run_in_threadpool(decision_detail, services.deps.db, auditor, decision_id) if decision_id else None
        )
        if detail is None:
            return JSONResponse(NOT_FOUND, status_code=404, headers=NO_STORE)
        if html:
            return HTMLResponse(render_decision(detail), headers=NO_STORE)
        return JSONResponse(decision_json(detail), headers=NO_STORE)

    return decision
