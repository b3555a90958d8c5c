"""The command's friendly edges: `--version` from the package metadata, and click's shell completion."""

from __future__ import annotations

import os
import subprocess
from importlib.metadata import version

from click.testing import CliRunner

import cli
from tests.e2e.conftest import CLI


def test_version_comes_from_the_package_metadata() -> None:
    result = CliRunner().invoke(cli.main, ["--version"])
    assert (
        result.exit_code == 0 and result.output.strip() == f"facesign-recovery, version {version('facesign-recovery')}"
    )


def complete(env: dict[str, str]) -> str:
    result = subprocess.run([CLI], env={**os.environ, **env}, capture_output=True, text=True, timeout=30)  # noqa: S603
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_shell_completion_script_and_answers() -> None:
    script = complete({"_FACESIGN_RECOVERY_COMPLETE": "bash_source"})
    assert "complete " in script and "_FACESIGN_RECOVERY_COMPLETE=bash_complete" in script
    words = complete(
        {"_FACESIGN_RECOVERY_COMPLETE": "bash_complete", "COMP_WORDS": "facesign-recovery do", "COMP_CWORD": "1"}
    )
    assert "plain,doctor" in words.split()  # bash's protocol: kind,word per line
    options = complete(
        {"_FACESIGN_RECOVERY_COMPLETE": "zsh_complete", "COMP_WORDS": "facesign-recovery worker --q", "COMP_CWORD": "2"}
    )
    assert "--queues" in options
