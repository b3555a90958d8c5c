"""`facesign-recovery worker` hands Dramatiq the right command line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli


@pytest.fixture
def exec_argv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[list[str]]:
    calls: list[list[str]] = []
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: calls.append(list(argv)))
    for name, value in {
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "FACESIGN_API_KEY": "k",
        "FACESIGN_WEBHOOK_SECRET": "s",
        "AUDIT_PSEUDONYM_KEY": "p",
        "dramatiq_prom_db": str(tmp_path / "metrics"),
        "dramatiq_prom_port": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),  # set by the command: restored after
        "WORKER_THREADS": "4",
        "LOG_FORMAT": "",  # blank is unset; the command sets it: restored after
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("dramatiq_prom_host", raising=False)  # set by the command: removed after
    return calls


def test_by_default_a_worker_consumes_every_queue(exec_argv: list[list[str]]) -> None:
    result = CliRunner().invoke(cli.main, ["worker", "--processes", "3", "--threads", "16"])
    assert result.exit_code == 0, result.output
    [argv] = exec_argv
    assert argv[1:6] == ["-m", "dramatiq", "workers.actors", "--processes", "3"]
    assert "--queues" not in argv and argv[argv.index("--threads") + 1] == "16"
    assert os.environ["WORKER_THREADS"] == "16"  # what the worker processes size their pools by


def test_queues_narrow_a_worker_to_deciding_or_mailing(exec_argv: list[list[str]]) -> None:
    args = ["worker", "--queues", "mail", "--queues", "sessions", "--queues", "mail"]
    assert CliRunner().invoke(cli.main, args).exit_code == 0
    assert exec_argv[0][exec_argv[0].index("--queues") :] == ["--queues", "mail", "sessions"]
    unknown = CliRunner().invoke(cli.main, ["worker", "--queues", "emails"])
    assert unknown.exit_code == 2 and "emails" in unknown.output


def test_worker_processes_get_the_log_format_decided_for_them(
    exec_argv: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert CliRunner().invoke(cli.main, ["worker"]).exit_code == 0
    assert os.environ["LOG_FORMAT"] == "json"  # Dramatiq pipes their output: they cannot tell a terminal
    monkeypatch.setenv("LOG_FORMAT", "console")
    assert CliRunner().invoke(cli.main, ["worker"]).exit_code == 0
    assert os.environ["LOG_FORMAT"] == "console"


def test_worker_metrics_listen_on_loopback_unless_configured(
    exec_argv: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = CliRunner().invoke(cli.main, ["worker"])
    assert result.exit_code == 0, result.output
    assert os.environ["dramatiq_prom_host"] == "127.0.0.1"  # what Dramatiq's exposition server binds
    assert "worker metrics on http://127.0.0.1:" in result.output
    monkeypatch.setenv("dramatiq_prom_host", "127.0.0.2")
    assert CliRunner().invoke(cli.main, ["worker"]).exit_code == 0
    assert os.environ["dramatiq_prom_host"] == "127.0.0.2"


@pytest.mark.parametrize("variable", ["FACESIGN_API_KEY", "FACESIGN_WEBHOOK_SECRET", "AUDIT_PSEUDONYM_KEY"])
def test_a_worker_without_its_secrets_does_not_start(
    exec_argv: list[list[str]], monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "")
    result = CliRunner().invoke(cli.main, ["worker"])
    assert result.exit_code == 1 and variable in result.output and exec_argv == []
