"""Running the real `facesign-recovery` processes for end-to-end tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

CLI = shutil.which("facesign-recovery", path=str(Path(sys.executable).parent)) or "facesign-recovery"


class Processes:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def run(self, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, *args], env=env, cwd=self.workdir, capture_output=True, text=True, timeout=60)

    def start(self, name: str, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{name}.log"
        handle = log.open("wb")
        process = subprocess.Popen(
            [CLI, *args], env=env, cwd=self.workdir, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.running.append((name, process, log))
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{log.read_text(errors='replace')[-4000:]}" for name, _, log in self.running)

    def stop_all(self) -> None:
        for _, process, _ in reversed(self.running):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for _, process, _ in self.running:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def processes(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(procs.logs())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


SERVICE_PREFIXES = ("FACESIGN_", "REDIS_", "DATABASE_", "AUDIT_", "METRICS_", "ALLOWED_ORIGINS", "FORWARDED_")


def base_env(**extra: str) -> dict[str, str]:
    """This machine's environment without the service's own settings, plus `extra`. The pseudonym key
    is set as in production (FACESIGN_SANDBOX=1 in `extra` is what turns on the built-in sandbox)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_PREFIXES)}
    env["AUDIT_PSEUDONYM_KEY"] = "e2e-pseudonym-key"
    env.update(extra)
    return env


def wait_http(url: str, timeout: float = 30.0, procs: Processes | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {timeout}s\n{procs.logs() if procs else ''}")


def poll_status(base: str, attempt_id: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    status = "pending"
    while time.monotonic() < deadline:
        status = requests.get(f"{base}/recoveries/{attempt_id}", timeout=5).json()["status"]
        if status != "pending":
            return status
        time.sleep(0.1)
    return status


def wait_for_mail(mail_dir: Path, timeout: float = 30.0) -> list[Path]:
    """The `.eml` files once there is one: the mail actor runs after the decision commits, so an
    attempt can read `approved` a moment before its email exists."""
    deadline = time.monotonic() + timeout
    while not (files := list(mail_dir.glob("*.eml"))) and time.monotonic() < deadline:
        time.sleep(0.05)
    return files
