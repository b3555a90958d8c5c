"""The path a session took through its flow, rebuilt from the outcomes its decision recorded."""

from __future__ import annotations

from typing import Any

import pytest

from domain.explain import session_path
from domain.flow import build_recovery_flow

FLOW = build_recovery_flow()


def walk(recognition: str | None, liveness: str | None, conversation: str | None = None) -> list[tuple[str, Any]]:
    return [(step.node_id, step.outcome) for step in session_path(FLOW, recognition, liveness, conversation).steps]


def test_an_approval_goes_through_the_known_user_branch_to_the_end() -> None:
    path = session_path(FLOW, "recognized", "livenessDetected", "identity_confirmed")
    assert [(s.node_id, s.outcome) for s in path.steps] == [
        ("start", None),
        ("greeting", None),
        ("recognition", "recognized"),
        ("liveness_known", "livenessDetected"),
        ("confirm_identity", "identity_confirmed"),
        ("closing", None),
        ("end", None),
    ]
    assert path.complete
    assert [s.node_id for s in path.steps if s.read_by_rules] == ["recognition", "liveness_known", "confirm_identity"]
    assert ("recognition", "liveness_known", "recognized") in path.edges
    assert "liveness_new" not in path.nodes


def test_a_deepfake_is_left_by_its_liveness_outcome() -> None:
    assert walk("recognized", "deepfakeDetected", "identity_confirmed")[3] == ("liveness_known", "deepfakeDetected")


@pytest.mark.parametrize("recognition", ["newUser", "noFace"])
def test_an_unknown_face_takes_the_new_user_branch_whose_outcomes_all_meet(recognition: str) -> None:
    # liveness_new's outcome is not on the row, but all of them lead to not_found, so the way on is known
    assert walk(recognition, None) == [
        ("start", None),
        ("greeting", None),
        ("recognition", recognition),
        ("liveness_new", None),
        ("not_found", None),
        ("end", None),
    ]


def test_the_walk_stops_where_the_row_does_not_say_which_way() -> None:
    path = session_path(FLOW, None, None, None)  # an incomplete session: nothing recorded
    assert [s.node_id for s in path.steps] == ["start", "greeting", "recognition"]
    assert not path.complete and path.describe().endswith("(not recorded further)")


def test_no_flow_means_no_path() -> None:
    assert session_path(None, "recognized", "livenessDetected", None).steps == ()
    assert session_path([], "recognized", "livenessDetected", None).steps == ()


def test_a_cycle_in_a_hand_written_flow_ends_the_walk() -> None:
    flow = [
        {"id": "start", "type": "start", "outcome": "a"},
        {"id": "a", "type": "conversation", "prompt": "x", "outcomes": [{"id": "o", "targetNodeId": "b"}]},
        {"id": "b", "type": "conversation", "prompt": "y", "outcomes": [{"id": "o", "targetNodeId": "a"}]},
    ]
    path = session_path(flow, None, None, None)
    assert [s.node_id for s in path.steps] == ["start", "a", "b"] and not path.complete
