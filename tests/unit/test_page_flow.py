"""FLOW_FILE: the operator's prompts, validated at start-up with errors that name the bad node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from adapters.facesign.flow_file import load_flow
from cli import main
from config import ConfigError
from domain.flow import build_recovery_flow


def write(tmp_path: Path, document: Any) -> str:
    path = tmp_path / "flow.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    return str(path)


def prompts(flow: list[dict[str, Any]]) -> dict[str, str]:
    return {node["id"]: node["prompt"] for node in flow if "prompt" in node}


def test_no_file_is_the_built_in_flow() -> None:
    assert load_flow(None) == build_recovery_flow()


def test_prompts_replace_the_built_in_ones(tmp_path: Path) -> None:
    flow = load_flow(write(tmp_path, {"prompts": {"greeting": "  Say: Hi there!  ", "closing": "Say: Bye."}}))
    got = prompts(flow)
    assert got["greeting"] == "Say: Hi there!" and got["closing"] == "Say: Bye."
    assert got["confirm_identity"] == prompts(build_recovery_flow())["confirm_identity"]
    assert [n["id"] for n in flow] == [n["id"] for n in build_recovery_flow()]


def test_a_whole_flow_is_accepted_when_valid(tmp_path: Path) -> None:
    custom = build_recovery_flow({"greeting": "Say: Welcome."})
    assert load_flow(write(tmp_path, {"flow": custom})) == custom


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"prompts": {"greting": "Say: hi"}}, "node 'greting'"),
        ({"prompts": {"closing": ""}}, "node 'closing'"),
        ({"prompts": {"closing": 3}}, "node 'closing'"),
        ({"prompts": {"greeting": "x" * 2001}}, "node 'greeting'"),
        ({"prompts": ["greeting"]}, '"prompts"'),
        ({"flow": [{"id": "start", "type": "start", "outcome": "nowhere"}, {"id": "end", "type": "end"}]}, "'start'"),
        ({"flow": [n for n in build_recovery_flow() if n["id"] != "liveness_new"]}, "node 'recognition'"),
        ({"flow": "nope"}, '"flow"'),
        ({"prompts": {}, "flow": []}, "exactly one key"),
        ([], "exactly one key"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_files_are_refused_naming_the_node(tmp_path: Path, document: Any, named: str) -> None:
    path = write(tmp_path, document)
    with pytest.raises(ConfigError) as caught:
        load_flow(path)
    message = str(caught.value)
    assert message.startswith("FLOW_FILE: ")
    assert named in message
    assert "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FLOW_FILE: cannot read"):
        load_flow(str(tmp_path / "absent.json"))


def test_serve_stops_at_start_up_on_a_bad_flow_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"prompts": {"goodbye": "Say: bye"}})
    result = CliRunner().invoke(main, ["serve"], env={"FLOW_FILE": path, "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
    assert result.exit_code == 1
    assert "FLOW_FILE" in result.output and "node 'goodbye'" in result.output
    assert not (tmp_path / "x.db").exists()  # nothing was started or migrated
