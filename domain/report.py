"""The parts of a fetched FaceSign session that the decision needs, parsed defensively."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.times import as_utc, from_epoch_ms

COMPLETE = "complete"
UNSUCCESSFUL = frozenset({"incomplete", "canceled", "cancelled", "expired", "failed", "abandoned"})
# Fields a session may carry with the time it finished; the documented API has none yet, so any is optional.
FINISHED_AT_FIELDS = ("completedAt", "finishedAt")


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
    finished_at: datetime | None = None  # when the vendor says the session finished, if it says

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
    status = status if isinstance(status, str) else ""
    finished = status == COMPLETE or status in UNSUCCESSFUL
    return SessionReport(
        id=session["id"],
        status=status,
        client_reference_id=reference if isinstance(reference, str) and reference else None,
        nodes=nodes,
        finished_at=_moment(session, FINISHED_AT_FIELDS) if finished else None,
    )


def _moment(session: Mapping[str, Any], names: tuple[str, ...]) -> datetime | None:
    """The first of these fields that holds a time: epoch milliseconds (as the webhook's `createdAt`)
    or an ISO 8601 string with a zone; anything else counts as absent."""
    for name in names:
        value = session.get(name)
        if isinstance(value, str) and len(value) <= 64:
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            if parsed.tzinfo is not None:
                return as_utc(parsed)
        elif (moment := from_epoch_ms(value)) is not None:
            return moment
    return None
