"""The parts of a fetched FaceSign session that the decision needs, parsed defensively."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

COMPLETE = "complete"
UNSUCCESSFUL = frozenset({"incomplete", "canceled", "cancelled", "expired", "failed", "abandoned"})


@dataclass(frozen=True)
class NodeReport:
    outcome: str | None
    report: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionReport:
    id: str
    status: str
    client_reference_id: str | None
    nodes: Mapping[str, NodeReport] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status == COMPLETE or self.status in UNSUCCESSFUL

    @property
    def successful(self) -> bool:
        return self.status == COMPLETE

    def outcome(self, node_id: str | None) -> str | None:
        node = self.nodes.get(node_id) if node_id else None
        return node.outcome if node else None


class ReportError(ValueError):
    """The API answered something that is not a session."""


def parse_session(payload: Mapping[str, Any]) -> SessionReport:
    """Parse `GET /sessions/{id}`'s answer (`{session, clientSecret}`) or a bare session object."""
    session = payload.get("session", payload) if isinstance(payload, Mapping) else None
    if not isinstance(session, Mapping) or not isinstance(session.get("id"), str):
        raise ReportError("response holds no session with a string id")
    status = session.get("status")
    reference = session.get("clientReferenceId")
    nodes: dict[str, NodeReport] = {}
    report = session.get("report")
    raw_nodes = report.get("nodeReports") if isinstance(report, Mapping) else None
    for item in raw_nodes if isinstance(raw_nodes, list) else ():
        if not isinstance(item, Mapping) or not isinstance(item.get("nodeId"), str):
            continue
        outcome = item.get("outcome")
        detail = item.get("report")
        nodes.setdefault(
            item["nodeId"],
            NodeReport(
                outcome=outcome if isinstance(outcome, str) else None,
                report=detail if isinstance(detail, Mapping) else {},
            ),
        )
    return SessionReport(
        id=session["id"],
        status=status if isinstance(status, str) else "",
        client_reference_id=reference if isinstance(reference, str) and reference else None,
        nodes=nodes,
    )
