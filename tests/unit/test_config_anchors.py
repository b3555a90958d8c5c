"""AUDIT_ANCHOR_SINK, AUDIT_ANCHOR_INTERVAL and AUDIT_ANCHOR_TOKEN: where anchors go, how often, with what token."""

from __future__ import annotations

import pytest

from config import ConfigError, Settings


def test_defaults_write_no_anchor_and_an_hourly_interval() -> None:
    settings = Settings.from_env({})
    assert (settings.audit_anchor_sink, settings.audit_anchor_interval, settings.audit_anchor_token) == (
        None,
        3600,
        None,
    )


@pytest.mark.parametrize(
    "env",
    [
        {"AUDIT_ANCHOR_SINK": "/var/lib/anchors/facesign.jsonl"},
        {"AUDIT_ANCHOR_SINK": "syslog"},
        {"AUDIT_ANCHOR_SINK": "https://anchors.example.com/in", "AUDIT_ANCHOR_TOKEN": "t"},
        {"AUDIT_ANCHOR_SINK": "http://127.0.0.1:9000/in", "AUDIT_ANCHOR_TOKEN": "t"},
    ],
    ids=["file", "syslog", "https", "loopback-http"],
)
def test_the_sinks_that_are_accepted(env: dict[str, str]) -> None:
    assert Settings.from_env({**env, "AUDIT_ANCHOR_INTERVAL": "600"}).audit_anchor_interval == 600


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"AUDIT_ANCHOR_SINK": "anchors.jsonl"}, "AUDIT_ANCHOR_SINK"),
        ({"AUDIT_ANCHOR_SINK": "http://anchors.example.com/in", "AUDIT_ANCHOR_TOKEN": "t"}, "AUDIT_ANCHOR_SINK"),
        ({"AUDIT_ANCHOR_SINK": "https://anchors.example.com/in"}, "AUDIT_ANCHOR_TOKEN"),
        (
            {"AUDIT_ANCHOR_SINK": "https://u:secret@anchors.example.com/in", "AUDIT_ANCHOR_TOKEN": "t"},
            "AUDIT_ANCHOR_SINK",
        ),
        ({"AUDIT_ANCHOR_INTERVAL": "0"}, "AUDIT_ANCHOR_INTERVAL"),
        ({"AUDIT_ANCHOR_INTERVAL": "hourly"}, "AUDIT_ANCHOR_INTERVAL"),
    ],
    ids=["relative-path", "plain-http", "no-token", "credentials-in-url", "zero-interval", "words"],
)
def test_a_bad_anchor_setting_names_its_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    assert message.startswith(f"{variable}:") and "\n" not in message and "secret" not in message
