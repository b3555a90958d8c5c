"""The recovery flow sent to FaceSign and the validator that refuses a broken one."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from domain.flow import (
    CONFIRMED,
    DEFAULT_PROMPTS,
    LIVENESS_OUTCOMES,
    NOT_CONFIRMED,
    RECOGNITION_OUTCOMES,
    FlowError,
    build_recovery_flow,
    confirming_outcome,
    decisive_nodes,
    find_recognition,
    targets,
    validate_flow,
)

Flow = list[dict[str, Any]]


def by_id(flow: Flow, node_id: str) -> dict[str, Any]:
    return next(node for node in flow if node["id"] == node_id)


def drop(flow: Flow, node_id: str) -> Flow:
    return [node for node in flow if node["id"] != node_id]


def test_default_flow_validates() -> None:
    validate_flow(build_recovery_flow())


def test_default_flow_shape() -> None:
    flow = build_recovery_flow()
    ids = [node["id"] for node in flow]
    assert len(ids) == len(set(ids))
    assert [n["id"] for n in flow if n["type"] == "start"] == ["start"]
    assert [n["id"] for n in flow if n["type"] == "end"] == ["end"]
    recognition = by_id(flow, "recognition")
    assert recognition["type"] == "recognition"
    assert set(recognition["outcomes"]) == set(RECOGNITION_OUTCOMES)
    assert recognition["outcomes"]["recognized"] == "liveness_known"
    # a new or absent face never reaches the known-user path
    assert recognition["outcomes"]["newUser"] != "liveness_known"
    assert recognition["outcomes"]["noFace"] != "liveness_known"
    for liveness in ("liveness_known", "liveness_new"):
        assert by_id(flow, liveness)["type"] == "liveness_detection"
        assert set(by_id(flow, liveness)["outcomes"]) == set(LIVENESS_OUTCOMES)
    confirm = by_id(flow, "confirm_identity")
    assert [o["id"] for o in confirm["outcomes"]] == [CONFIRMED, NOT_CONFIRMED]


def test_each_build_is_independent() -> None:
    first = build_recovery_flow()
    by_id(first, "greeting")["prompt"] = "changed"
    assert by_id(build_recovery_flow(), "greeting")["prompt"] == DEFAULT_PROMPTS["greeting"]


def test_custom_prompts_are_used_and_others_keep_their_default() -> None:
    flow = build_recovery_flow({"greeting": "Say: Hi there.", "closing": "Say: Bye."})
    validate_flow(flow)
    assert by_id(flow, "greeting")["prompt"] == "Say: Hi there."
    assert by_id(flow, "closing")["prompt"] == "Say: Bye."
    assert by_id(flow, "confirm_identity")["prompt"] == DEFAULT_PROMPTS["confirm_identity"]
    assert by_id(flow, "not_found")["prompt"] == DEFAULT_PROMPTS["not_found"]


def test_default_prompts_used_when_none_given() -> None:
    flow = build_recovery_flow(None)
    for name, prompt in DEFAULT_PROMPTS.items():
        assert by_id(flow, name)["prompt"] == prompt


def test_custom_prompt_does_not_change_the_defaults() -> None:
    build_recovery_flow({"greeting": "Say: Yo."})
    assert DEFAULT_PROMPTS["greeting"].startswith("Say: Hello!")


def test_blank_custom_prompt_is_refused_by_the_validator() -> None:
    with pytest.raises(FlowError, match=r"^node 'greeting': needs a prompt$"):
        validate_flow(build_recovery_flow({"greeting": "   "}))


# --- validator failures, each naming the node ------------------------------------------------------------


def missing_target(flow: Flow) -> Flow:
    by_id(flow, "closing")["outcomes"][0]["targetNodeId"] = "nowhere"
    return flow


def missing_start_target(flow: Flow) -> Flow:
    by_id(flow, "start")["outcome"] = "nowhere"
    return flow


def missing_recognition_target(flow: Flow) -> Flow:
    by_id(flow, "recognition")["outcomes"]["newUser"] = "ghost"
    return flow


def duplicate_id(flow: Flow) -> Flow:
    return [*flow, copy.deepcopy(by_id(flow, "closing"))]


def two_starts(flow: Flow) -> Flow:
    return [{"id": "start2", "type": "start", "outcome": "greeting"}, *flow]


def no_start(flow: Flow) -> Flow:
    return drop(flow, "start")


def no_end(flow: Flow) -> Flow:
    return drop(flow, "end")


def end_unreachable(flow: Flow) -> Flow:
    # every path loops back to the greeting; `end` is still there but nothing leads to it
    for node_id in ("not_found", "closing"):
        by_id(flow, node_id)["outcomes"][0]["targetNodeId"] = "greeting"
    return flow


def unreachable_node(flow: Flow) -> Flow:
    orphan = {
        "id": "orphan",
        "type": "conversation",
        "prompt": "Say: hi",
        "outcomes": [{"id": "o", "targetNodeId": "end"}],
    }
    return [*flow, orphan]


def recognition_missing_outcome(flow: Flow) -> Flow:
    del by_id(flow, "recognition")["outcomes"]["noFace"]
    return flow


def recognition_outcome_not_a_string(flow: Flow) -> Flow:
    by_id(flow, "recognition")["outcomes"]["newUser"] = None
    return flow


def recognition_outcomes_a_list(flow: Flow) -> Flow:
    by_id(flow, "recognition")["outcomes"] = [{"id": "recognized", "targetNodeId": "liveness_known"}]
    return flow


def liveness_missing_outcome(flow: Flow) -> Flow:
    del by_id(flow, "liveness_known")["outcomes"]["deepfakeDetected"]
    return flow


def liveness_missing_all(flow: Flow) -> Flow:
    del by_id(flow, "liveness_new")["outcomes"]
    return flow


def conversation_without_outcomes(flow: Flow) -> Flow:
    by_id(flow, "confirm_identity")["outcomes"] = []
    return flow


def conversation_outcomes_absent(flow: Flow) -> Flow:
    del by_id(flow, "confirm_identity")["outcomes"]
    return flow


def conversation_outcome_without_target(flow: Flow) -> Flow:
    del by_id(flow, "confirm_identity")["outcomes"][1]["targetNodeId"]
    return flow


def conversation_without_prompt(flow: Flow) -> Flow:
    del by_id(flow, "greeting")["prompt"]
    return flow


def conversation_prompt_not_a_string(flow: Flow) -> Flow:
    by_id(flow, "closing")["prompt"] = ["Say: bye"]
    return flow


def unknown_type(flow: Flow) -> Flow:
    by_id(flow, "greeting")["type"] = "quiz"
    return flow


def missing_type(flow: Flow) -> Flow:
    del by_id(flow, "closing")["type"]
    return flow


def start_without_outcome(flow: Flow) -> Flow:
    del by_id(flow, "start")["outcome"]
    return flow


def recognized_not_to_liveness(flow: Flow) -> Flow:
    # keep liveness_known reachable so that only the recognition rule fails
    by_id(flow, "recognition")["outcomes"].update(recognized="confirm_identity", newUser="liveness_known")
    return flow


def no_recognition(flow: Flow) -> Flow:
    by_id(flow, "greeting")["outcomes"][0]["targetNodeId"] = "closing"
    return [n for n in flow if n["id"] in {"start", "greeting", "closing", "end"}]


def node_without_id(flow: Flow) -> Flow:
    del by_id(flow, "end")["id"]
    return flow


def node_with_empty_id(flow: Flow) -> Flow:
    flow[0]["id"] = ""
    return flow


def node_not_an_object(flow: Flow) -> Flow:
    return [*flow, "end"]  # type: ignore[list-item]


FAILURES: list[tuple[Callable[[Flow], Flow], str]] = [
    (missing_target, r"^node 'closing': target 'nowhere' does not exist$"),
    (missing_start_target, r"^node 'start': target 'nowhere' does not exist$"),
    (missing_recognition_target, r"^node 'recognition': target 'ghost' does not exist$"),
    (duplicate_id, r"^node 'closing': duplicate id$"),
    (two_starts, r"^flow: needs exactly one start node, found 2$"),
    (no_start, r"^flow: needs exactly one start node, found 0$"),
    (no_end, r"^flow: needs an end node$"),
    (end_unreachable, r"^node 'start': no end node is reachable from the start$"),
    (unreachable_node, r"^node 'orphan': unreachable from the start$"),
    (recognition_missing_outcome, r"^node 'recognition': outcomes missing noFace$"),
    (recognition_outcome_not_a_string, r"^node 'recognition': outcomes missing newUser$"),
    (recognition_outcomes_a_list, r"^node 'recognition': outcomes must map each outcome to a node id$"),
    (liveness_missing_outcome, r"^node 'liveness_known': outcomes missing deepfakeDetected$"),
    (liveness_missing_all, r"^node 'liveness_new': outcomes must map each outcome to a node id$"),
    (conversation_without_outcomes, r"^node 'confirm_identity': needs a list of outcomes, each with a targetNodeId$"),
    (conversation_outcomes_absent, r"^node 'confirm_identity': needs a list of outcomes"),
    (conversation_outcome_without_target, r"^node 'confirm_identity': needs a list of outcomes"),
    (conversation_without_prompt, r"^node 'greeting': needs a prompt$"),
    (conversation_prompt_not_a_string, r"^node 'closing': needs a prompt$"),
    (unknown_type, r"^node 'greeting': unknown type 'quiz'$"),
    (missing_type, r"^node 'closing': unknown type None$"),
    (start_without_outcome, r"^node 'start': start needs an outcome naming the first node$"),
    (recognized_not_to_liveness, r"^node 'recognition': 'recognized' must lead to a liveness_detection node$"),
    (no_recognition, r"^flow: needs a recognition node$"),
    (node_without_id, r"^node #8: needs a non-empty string id$"),
    (node_with_empty_id, r"^node #0: needs a non-empty string id$"),
    (node_not_an_object, r"^node #9: needs a non-empty string id$"),
]


@pytest.mark.parametrize(("breaker", "message"), [pytest.param(b, m, id=b.__name__) for b, m in FAILURES])
def test_validator_refuses_broken_flow(breaker: Callable[[Flow], Flow], message: str) -> None:
    flow = breaker(build_recovery_flow())
    with pytest.raises(FlowError, match=message):
        validate_flow(flow)


def test_empty_flow_is_refused() -> None:
    with pytest.raises(FlowError, match=r"^flow: needs exactly one start node, found 0$"):
        validate_flow([])


def test_minimal_flow_with_recognition_validates() -> None:
    flow: Flow = [
        {"id": "s", "type": "start", "outcome": "r"},
        {"id": "r", "type": "recognition", "outcomes": {o: "l" for o in RECOGNITION_OUTCOMES}},
        {"id": "l", "type": "liveness_detection", "outcomes": {o: "e" for o in LIVENESS_OUTCOMES}},
        {"id": "e", "type": "end"},
    ]
    validate_flow(flow)
    assert decisive_nodes(flow) == ("r", "l", None)


# --- targets, decisive nodes and the confirming outcome -----------------------------------------------------


def test_targets() -> None:
    flow = build_recovery_flow()
    assert targets(by_id(flow, "start")) == ["greeting"]
    assert sorted(targets(by_id(flow, "recognition"))) == ["liveness_known", "liveness_new", "liveness_new"]
    assert targets(by_id(flow, "confirm_identity")) == ["closing", "closing"]
    assert targets(by_id(flow, "end")) == []
    assert targets({"id": "x", "type": "conversation", "outcomes": "nope"}) == []
    assert targets({"id": "x", "type": "start"}) == []


def test_decisive_nodes_of_the_default_flow() -> None:
    assert decisive_nodes(build_recovery_flow()) == ("recognition", "liveness_known", "confirm_identity")


@pytest.mark.parametrize("flow", [None, []], ids=["none", "empty"])
def test_decisive_nodes_fall_back_without_a_flow(flow: Any) -> None:
    assert decisive_nodes(flow) == ("recognition", "liveness_known", "confirm_identity")


def test_decisive_nodes_fall_back_without_a_recognition_node() -> None:
    flow = [{"id": "s", "type": "start", "outcome": "e"}, {"id": "e", "type": "end"}]
    assert decisive_nodes(flow) == ("recognition", "liveness_known", "confirm_identity")


def test_decisive_nodes_follow_renamed_ids() -> None:
    flow = build_recovery_flow()
    recognition = by_id(flow, "recognition")
    recognition["id"] = "face"
    recognition["outcomes"]["recognized"] = "liveness_new"
    by_id(flow, "greeting")["outcomes"][0]["targetNodeId"] = "face"
    by_id(flow, "liveness_new")["outcomes"]["livenessDetected"] = "confirm_identity"
    assert decisive_nodes(flow) == ("face", "liveness_new", "confirm_identity")


def test_decisive_conversation_is_none_when_liveness_leads_elsewhere() -> None:
    flow = build_recovery_flow()
    by_id(flow, "liveness_known")["outcomes"]["livenessDetected"] = "end"
    assert decisive_nodes(flow) == ("recognition", "liveness_known", None)


def test_find_recognition() -> None:
    assert find_recognition(build_recovery_flow()) is not None
    assert find_recognition([{"id": "s", "type": "start"}]) is None


def test_confirming_outcome_of_the_default_flow() -> None:
    flow = build_recovery_flow()
    _, _, conversation = decisive_nodes(flow)
    assert confirming_outcome(flow, conversation) == CONFIRMED == "identity_confirmed"


@pytest.mark.parametrize(
    ("flow", "conversation_id"),
    [
        pytest.param(None, "confirm_identity", id="no-flow"),
        pytest.param([], "confirm_identity", id="empty-flow"),
        pytest.param(build_recovery_flow(), None, id="no-conversation"),
        pytest.param(build_recovery_flow(), "absent", id="unknown-conversation"),
    ],
)
def test_confirming_outcome_falls_back(flow: Any, conversation_id: str | None) -> None:
    assert confirming_outcome(flow, conversation_id) == CONFIRMED


def test_confirming_outcome_is_the_first_outcome_of_the_node() -> None:
    flow = build_recovery_flow()
    by_id(flow, "confirm_identity")["outcomes"].reverse()
    assert confirming_outcome(flow, "confirm_identity") == NOT_CONFIRMED
