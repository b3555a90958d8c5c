"""`uvicorn receiver.app:app`, as the README allows: uvicorn's own logging, and still no token in its
access log; a missing secret stops it at start-up instead of answering 500 for ever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.conftest import free_port
from tests.e2e.conftest import CLI, base_env, wait_http

TOKEN = "LiveResetToken_abcdefghijklmnopqrstuvwxyz0123456"


def uvicorn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "uvicorn", "receiver.app:app", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def test_the_access_log_of_uvicorn_receiver_app_holds_no_token(tmp_path: Path) -> None:
    env = base_env(
        DATABASE_URL=f"sqlite:///{tmp_path}/u.db",
        FACESIGN_API_KEY="fs_key",
        FACESIGN_WEBHOOK_SECRET="whsec_u",
    )
    assert subprocess.run([CLI, "db", "upgrade"], env=env, capture_output=True, timeout=60).returncode == 0
    port, log = free_port(), tmp_path / "uvicorn.log"
    server = uvicorn(env, port, log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz")
        assert requests.get(f"{base}/reset", params={"token": TOKEN}, timeout=5).status_code == 200  # an old link
        assert requests.get(f"{base}/reset/?token={TOKEN}", timeout=5).status_code == 404
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)
    output = log.read_text()
    assert '"GET /reset?token=<redacted> HTTP/1.1" 200' in output, output
    assert TOKEN not in output


def test_uvicorn_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    env = base_env(DATABASE_URL=f"sqlite:///{tmp_path}/u.db", FACESIGN_API_KEY="", FACESIGN_WEBHOOK_SECRET="s")
    log = tmp_path / "uvicorn.log"
    server = uvicorn(env, free_port(), log)
    try:
        code = server.wait(timeout=30)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    assert code != 0
    assert "FACESIGN_API_KEY: required" in log.read_text()
