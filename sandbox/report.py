"""The session report FaceSign would produce, derived from what the person chose on the hosted page.

The report is built by walking the session's own flow rather than assuming node ids, so a
receiver that finds its nodes by type is exercised the same way the real vendor would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.flow import CONVERSATION, END, LIVENESS, RECOGNITION, START, find_recognition

IDENTITY_UNKNOWN = "unknown"
IDENTITY_NONE = "none"
LIVENESS_CHOICES: Mapping[str, str] = {
    "live": "livenessDetected",
    "deepfake": "deepfakeDetected",
    "none": "noFace",
}


@dataclass(frozen=True)
class Choices:
    """What the camera "saw". `profile` is the enrolled profile when the identity is recognised."""

    identity: str  # an enrolled email, IDENTITY_UNKNOWN or IDENTITY_NONE
    liveness: str  # a key of LIVENESS_CHOICES
    confirm_email: bool
    profile: Mapping[str, Any] | None = None


def build_report(flow: Sequence[Mapping[str, Any]], choices: Choices) -> dict[str, Any]:
    """`{"nodeReports": [...]}` in the order the person would have passed through the nodes."""
    by_id = {node.get("id"): node for node in flow if isinstance(node, Mapping)}
    reports: list[dict[str, Any]] = []
    visited: set[Any] = set()
    start = next((n for n in flow if isinstance(n, Mapping) and n.get("type") == START), None)
    if start is not None:
        _walk(start, by_id, choices, reports, visited)
    recognition = find_recognition([n for n in flow if isinstance(n, Mapping)])
    # A flow whose start never reaches recognition still gets its recognition result reported,
    # because that is the node every consumer looks for first.
    if recognition is not None and recognition.get("id") not in visited:
        _walk(recognition, by_id, choices, reports, visited)
    return {"nodeReports": reports}


def _walk(
    node: Mapping[str, Any] | None,
    by_id: Mapping[Any, Mapping[str, Any]],
    choices: Choices,
    reports: list[dict[str, Any]],
    visited: set[Any],
) -> None:
    past_recognition = False
    while node is not None and node.get("id") not in visited:
        visited.add(node.get("id"))
        kind = node.get("type")
        outcome: str | None
        if kind == END:
            return
        if kind == START:
            node = by_id.get(node.get("outcome"))
            continue
        if kind == RECOGNITION:
            outcome, report = _recognition(choices)
            past_recognition = True
        elif kind == LIVENESS:
            outcome, report = LIVENESS_CHOICES[choices.liveness], {}
        elif kind == CONVERSATION:
            outcome, report = _conversation(node, choices.confirm_email, decisive=past_recognition), {}
        else:
            outcome, report = _first_outcome(node), {}
        if outcome is None:
            return
        reports.append({"nodeId": node.get("id"), "outcome": outcome, "report": report})
        node = by_id.get(_target(node, outcome))


def _recognition(choices: Choices) -> tuple[str, dict[str, Any]]:
    if choices.identity == IDENTITY_NONE:
        return "noFace", {}
    if choices.identity == IDENTITY_UNKNOWN or choices.profile is None:
        return "newUser", {}
    return "recognized", dict(choices.profile)


def _conversation(node: Mapping[str, Any], confirmed: bool, decisive: bool) -> str | None:
    outcomes = [o for o in node.get("outcomes") or [] if isinstance(o, Mapping) and "id" in o]
    if not outcomes:
        return None
    # Only the conversation after recognition asks for the account email; earlier prompts
    # (the greeting) are simply acknowledged, which is their first outcome.
    if len(outcomes) > 1 and decisive and not confirmed:
        return str(outcomes[1]["id"])
    return str(outcomes[0]["id"])


def _first_outcome(node: Mapping[str, Any]) -> str | None:
    outcomes = node.get("outcomes")
    if isinstance(outcomes, Mapping) and outcomes:
        return str(next(iter(outcomes)))
    if isinstance(outcomes, list) and outcomes and isinstance(outcomes[0], Mapping) and "id" in outcomes[0]:
        return str(outcomes[0]["id"])
    return None


def _target(node: Mapping[str, Any], outcome: str) -> Any:
    outcomes = node.get("outcomes")
    if isinstance(outcomes, Mapping):
        return outcomes.get(outcome)
    if isinstance(outcomes, list):
        matches = (o.get("targetNodeId") for o in outcomes if isinstance(o, Mapping) and o.get("id") == outcome)
        return next(matches, None)
    return None
