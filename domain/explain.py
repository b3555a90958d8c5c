"""The way one session went through its recovery flow, rebuilt from the outcomes its decision recorded.

The audit row keeps three node outcomes: recognition, the liveness check its `recognized` outcome leads
to, and the conversation after that liveness check (`flow.decisive_nodes`). Walking the flow from its
start, each node is left by the outcome the row recorded for it; a node whose outcome was not recorded
is left only when every one of its outcomes leads to the same node. Otherwise the walk stops there:
nothing the row holds says which way the session went.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.flow import END, START, decisive_nodes, targets

LIMIT = 64  # flows are a handful of nodes; a longer walk is a cycle in a hand-written flow


@dataclass(frozen=True)
class Step:
    node_id: str
    kind: str
    outcome: str | None  # the outcome the session left this node by, when the row says
    read_by_rules: bool  # one of the three nodes whose outcome the decision rules test


@dataclass(frozen=True)
class Path:
    steps: tuple[Step, ...]
    complete: bool  # the walk reached an end node
    edges: frozenset[tuple[str, str, str | None]]  # (node, target, outcome) taken

    @property
    def nodes(self) -> frozenset[str]:
        return frozenset(step.node_id for step in self.steps)

    def describe(self) -> str:
        words = [f"{s.node_id} ({s.outcome})" if s.outcome else s.node_id for s in self.steps]
        return " → ".join(words) + ("" if self.complete or not words else " → (not recorded further)")


NO_PATH = Path((), False, frozenset())


def _leave(node: Mapping[str, Any], recorded: str | None) -> tuple[str | None, str | None]:
    """(outcome, target) by which the session left `node`; (None, None) when the row cannot say."""
    outcomes = node.get("outcomes")
    pairs: list[tuple[str, str]] = []
    if isinstance(outcomes, Mapping):
        pairs = [(str(key), value) for key, value in outcomes.items() if isinstance(value, str)]
    elif isinstance(outcomes, list):
        pairs = [
            (str(item.get("id")), item["targetNodeId"])
            for item in outcomes
            if isinstance(item, Mapping) and isinstance(item.get("targetNodeId"), str)
        ]
    for outcome, target in pairs:
        if recorded is not None and outcome == recorded:
            return outcome, target
    ends = set(targets(node))
    if recorded is None and len(ends) == 1:
        return None, ends.pop()
    return None, None


def session_path(
    flow: Sequence[Mapping[str, Any]] | None,
    recognition: str | None,
    liveness: str | None,
    conversation: str | None,
) -> Path:
    """The steps from the flow's start node as far as the recorded outcomes lead."""
    nodes = {n["id"]: n for n in flow or () if isinstance(n, Mapping) and isinstance(n.get("id"), str)}
    start = next((node_id for node_id, n in nodes.items() if n.get("type") == START), None)
    if start is None:
        return NO_PATH
    recognition_id, liveness_id, conversation_id = decisive_nodes(flow)
    recorded = {recognition_id: recognition, liveness_id: liveness}
    if conversation_id is not None:
        recorded[conversation_id] = conversation
    steps: list[Step] = []
    edges: set[tuple[str, str, str | None]] = set()
    current: str | None = start
    while current is not None and current in nodes and len(steps) < LIMIT and all(s.node_id != current for s in steps):
        node = nodes[current]
        kind = str(node.get("type"))
        if kind == START:
            outcome, target = None, node.get("outcome")
        elif kind == END:
            outcome, target = None, None
        else:
            outcome, target = _leave(node, recorded.get(current))
        steps.append(Step(current, kind, outcome, current in recorded))
        if kind == END:
            return Path(tuple(steps), True, frozenset(edges))
        if isinstance(target, str):
            edges.add((current, target, outcome))
        current = target if isinstance(target, str) else None
    return Path(tuple(steps), False, frozenset(edges))
