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
        "dramatiq_prom_db": str(tmp_path / "metrics"),
        "dramatiq_prom_port": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),  # set by the command: restored after
        "WORKER_THREADS": "4",
        "LOG_FORMAT": "",  # blank is unset; the command sets it: restored after
    }.items():
        monkeypatch.setenv(name, value)
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
