"""The recovery flow sent to FaceSign, and the validator that refuses a broken one.

The shape follows the vendor's advice: recognition branches known and new users into
separate paths, each with its own liveness check and conversation, so no prompt has to
carry conditional logic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Node = dict[str, Any]
Flow = list[Node]

RECOGNITION = "recognition"
LIVENESS = "liveness_detection"
CONVERSATION = "conversation"
START = "start"
END = "end"
NODE_TYPES = (START, CONVERSATION, RECOGNITION, LIVENESS, END)

RECOGNITION_OUTCOMES = ("recognized", "newUser", "noFace")
LIVENESS_OUTCOMES = ("livenessDetected", "deepfakeDetected", "noFace")

# The conversation node on the known-user path: its first outcome is the confirming one.
CONFIRMED = "identity_confirmed"
NOT_CONFIRMED = "identity_not_confirmed"

DEFAULT_PROMPTS: Mapping[str, str] = {
    "greeting": "Say: Hello! To help you get back into your account I need to check that it is really you. "
    "This takes a few seconds. Shall we begin?",
    "confirm_identity": "Say: Your face matches our records. To be extra safe, please tell me the email "
    "address of your account.",
    "not_found": "Say: I could not find an account that matches you. If you are new, please sign up first; "
    "if you think this is a mistake, contact support.",
    "closing": "Say: All done. A password reset link is on its way to your email. Goodbye!",
}


class FlowError(ValueError):
    """The flow is not one FaceSign could run to a decision; the message names the node."""


def build_recovery_flow(prompts: Mapping[str, str] | None = None) -> Flow:
    """The account-recovery flow, with operator-supplied prompts where given."""
    p = {**DEFAULT_PROMPTS, **(prompts or {})}
    return [
        {"id": "start", "type": START, "outcome": "greeting"},
        _conversation("greeting", p["greeting"], [("g1", "recognition", "User has responded or acknowledged")]),
        {
            "id": "recognition",
            "type": RECOGNITION,
            "outcomes": {"recognized": "liveness_known", "newUser": "liveness_new", "noFace": "liveness_new"},
        },
        _liveness("liveness_known", "confirm_identity"),
        _conversation(
            "confirm_identity",
            p["confirm_identity"],
            [
                (CONFIRMED, "closing", "The user provided the email address of the account"),
                (NOT_CONFIRMED, "closing", "The user could not provide an email address or refused"),
            ],
        ),
        _liveness("liveness_new", "not_found"),
        _conversation("not_found", p["not_found"], [("acknowledged", "end", "")], reply=False),
        _conversation("closing", p["closing"], [("c1", "end", "")], reply=False),
        {"id": "end", "type": END},
    ]


def _conversation(node_id: str, prompt: str, outcomes: list[tuple[str, str, str]], reply: bool = True) -> Node:
    node: Node = {
        "id": node_id,
        "type": CONVERSATION,
        "prompt": prompt,
        "outcomes": [{"id": oid, "targetNodeId": target, "condition": cond} for oid, target, cond in outcomes],
    }
    if not reply:
        node["doesNotRequireReply"] = True
    return node


def _liveness(node_id: str, target: str) -> Node:
    return {"id": node_id, "type": LIVENESS, "outcomes": {o: target for o in LIVENESS_OUTCOMES}}


def targets(node: Mapping[str, Any]) -> list[str]:
    """Every node id this node can lead to."""
    if node.get("type") == START:
        return [node["outcome"]] if isinstance(node.get("outcome"), str) else []
    outcomes = node.get("outcomes")
    if isinstance(outcomes, Mapping):
        return [t for t in outcomes.values() if isinstance(t, str)]
    if isinstance(outcomes, list):
        return [
            o["targetNodeId"] for o in outcomes if isinstance(o, Mapping) and isinstance(o.get("targetNodeId"), str)
        ]
    return []


def validate_flow(flow: Sequence[Mapping[str, Any]]) -> None:
    """Raise FlowError unless every target exists, there is one start, and the end is reachable from it."""
    nodes: dict[str, Mapping[str, Any]] = {}
    for index, node in enumerate(flow):
        node_id = node.get("id") if isinstance(node, Mapping) else None
        if not isinstance(node_id, str) or not node_id:
            raise FlowError(f"node #{index}: needs a non-empty string id")
        if node_id in nodes:
            raise FlowError(f"node {node_id!r}: duplicate id")
        if node.get("type") not in NODE_TYPES:
            raise FlowError(f"node {node_id!r}: unknown type {node.get('type')!r}")
        nodes[node_id] = node
    starts = [n for n in nodes.values() if n["type"] == START]
    if len(starts) != 1:
        raise FlowError(f"flow: needs exactly one start node, found {len(starts)}")
    if not any(n["type"] == END for n in nodes.values()):
        raise FlowError("flow: needs an end node")
    for node_id, node in nodes.items():
        _check_outcomes(node_id, node)
        for target in targets(node):
            if target not in nodes:
                raise FlowError(f"node {node_id!r}: target {target!r} does not exist")
    _check_end_reachable(nodes, str(starts[0]["id"]))
    recognition = find_recognition(flow)
    if recognition is None:
        raise FlowError("flow: needs a recognition node")
    if nodes[recognition["outcomes"]["recognized"]]["type"] != LIVENESS:
        raise FlowError(f"node {recognition['id']!r}: 'recognized' must lead to a liveness_detection node")


def _check_outcomes(node_id: str, node: Mapping[str, Any]) -> None:
    kind = node["type"]
    expected = {RECOGNITION: RECOGNITION_OUTCOMES, LIVENESS: LIVENESS_OUTCOMES}.get(kind)
    if expected is not None:
        outcomes = node.get("outcomes")
        if not isinstance(outcomes, Mapping):
            raise FlowError(f"node {node_id!r}: outcomes must map each outcome to a node id")
        missing = [o for o in expected if not isinstance(outcomes.get(o), str)]
        if missing:
            raise FlowError(f"node {node_id!r}: outcomes missing {', '.join(missing)}")
    elif kind == CONVERSATION:
        outcomes = node.get("outcomes")
        if not isinstance(outcomes, list) or not outcomes or len(targets(node)) != len(outcomes):
            raise FlowError(f"node {node_id!r}: needs a list of outcomes, each with a targetNodeId")
        if not isinstance(node.get("prompt"), str) or not node["prompt"].strip():
            raise FlowError(f"node {node_id!r}: needs a prompt")
    elif kind == START and not isinstance(node.get("outcome"), str):
        raise FlowError(f"node {node_id!r}: start needs an outcome naming the first node")


def _check_end_reachable(nodes: Mapping[str, Mapping[str, Any]], start: str) -> None:
    seen = {start}
    stack = [start]
    while stack:
        for target in targets(nodes[stack.pop()]):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    if not any(nodes[n]["type"] == END for n in seen):
        raise FlowError(f"node {start!r}: no end node is reachable from the start")
    for node_id in nodes:
        if node_id not in seen:
            raise FlowError(f"node {node_id!r}: unreachable from the start")


def find_recognition(flow: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return next((n for n in flow if n.get("type") == RECOGNITION), None)


def decisive_nodes(flow: Sequence[Mapping[str, Any]] | None) -> tuple[str, str, str | None]:
    """The ids of the recognition node, the liveness node its `recognized` outcome leads to,
    and the conversation node that liveness passes to (None if there is none)."""
    if not flow:
        return "recognition", "liveness_known", "confirm_identity"
    by_id = {n.get("id"): n for n in flow}
    recognition = find_recognition(flow)
    if recognition is None:
        return "recognition", "liveness_known", "confirm_identity"
    liveness_id = str(recognition.get("outcomes", {}).get("recognized", "liveness_known"))
    liveness = by_id.get(liveness_id) or {}
    conversation_id = (liveness.get("outcomes") or {}).get("livenessDetected")
    conversation = by_id.get(conversation_id) or {}
    return str(recognition["id"]), liveness_id, conversation_id if conversation.get("type") == CONVERSATION else None


def confirming_outcome(flow: Sequence[Mapping[str, Any]] | None, conversation_id: str | None) -> str:
    """The outcome id of the known-user conversation that confirms the identity: its first outcome."""
    for node in flow or ():
        if node.get("id") == conversation_id and isinstance(node.get("outcomes"), list) and node["outcomes"]:
            return str(node["outcomes"][0].get("id"))
    return CONFIRMED
