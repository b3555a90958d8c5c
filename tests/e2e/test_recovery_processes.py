"""Whole recoveries through real processes: `serve` with the sandbox, and Redis with a separate worker."""

from __future__ import annotations

import email
import email.policy
import json
import re
import time
from pathlib import Path

import redis
import requests

from tests.conftest import free_port
from tests.e2e.conftest import Processes, base_env, poll_status, wait_for_mail, wait_http


def start_recovery(base: str) -> tuple[str, str]:
    answer = requests.post(f"{base}/recoveries", json={"type": "forgot_password"}, timeout=10)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return body["id"], body["url"].rstrip("/").rsplit("/", 1)[-1]


def finish(sandbox: str, session_id: str, **choices: object) -> None:
    answer = requests.post(f"{sandbox}/sandbox/sessions/{session_id}/complete", json=choices, timeout=10)
    assert answer.status_code == 200, answer.text


def audit_rows(processes: Processes, env: dict[str, str]) -> list[dict[str, object]]:
    result = processes.run(env, "audit", "query", "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def reset_link(mail_dir: Path) -> str:
    """The link in the one reset email (Ada may also have been alerted about a refused attempt)."""
    deadline = time.monotonic() + 30
    while True:
        wait_for_mail(mail_dir)
        files = mail_dir.glob("*.eml")
        messages = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]
        resets = [m for m in messages if m["Subject"] == "Reset your password"]
        if resets or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(resets) == 1, [m["Subject"] for m in messages]
    message = resets[0]
    assert message["To"] == "ada@example.com"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    match = re.search(r"http\S+token=[A-Za-z0-9_-]+", text)
    assert match, text
    return match.group(0)


def listening_addresses(port: int) -> set[str]:
    """The local addresses of this machine's listening TCP sockets on `port` (IPv4, from /proc)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def test_embedded_serve_with_sandbox(processes: Processes, tmp_path: Path) -> None:
    port, sandbox_port = free_port(), free_port()
    env = base_env(
        DATABASE_URL=f"sqlite:///{tmp_path}/e2e.db",
        MAIL_BACKEND="file",
        MAIL_DIR=str(tmp_path / "mail"),
        SANDBOX_PORT=str(sandbox_port),
        FACESIGN_SANDBOX="1",
    )
    assert processes.run(env, "db", "upgrade").returncode == 0
    added = processes.run(env, "users", "add", "Ada@Example.com", "--id", "ada", "--name", "Ada")
    assert added.returncode == 0, added.stderr
    processes.start("serve", env, "serve", "--port", str(port))
    base, sandbox = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sandbox_port}"
    wait_http(f"{base}/readyz", procs=processes)

    approved_id, approved_session = start_recovery(base)
    finish(sandbox, approved_session, identity="ada@example.com", liveness="live", confirmEmail=True)
    denied_id, denied_session = start_recovery(base)
    finish(sandbox, denied_session, identity="ada@example.com", liveness="deepfake")

    assert poll_status(base, approved_id) == "approved"
    assert poll_status(base, denied_id) == "denied"
    rows = {row["attemptId"]: row for row in audit_rows(processes, env)}
    assert rows[approved_id]["reason"] == "verified" and rows[approved_id]["matchedUserId"] == "ada"
    assert rows[denied_id]["reason"] == "deepfake_detected"
    assert all(str(row["eventId"]).startswith("evt_") for row in rows.values())
    assert reset_link(tmp_path / "mail").startswith(f"{base}/reset#token=")
    metrics = requests.get(f"{base}/metrics", timeout=5).text
    assert 'facesign_decisions_total{outcome="approved",reason="verified"} 1.0' in metrics
    # A client behind a proxy on this host is not local: serve believes X-Forwarded-For from loopback.
    proxied = requests.get(f"{base}/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=5)
    assert proxied.status_code == 404 and "facesign" not in proxied.text
    assert "FaceSign SANDBOX in use" in processes.logs()  # said loudly
    assert listening_addresses(sandbox_port) == {"127.0.0.1"}  # the stand-in is reachable from this host only


def test_redis_mode_with_separate_worker(
    processes: Processes, tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    redis_db = redis_url.rsplit("/", 1)[0] + "/14"
    redis.Redis.from_url(redis_db).flushdb()
    port, sandbox_port = free_port(), free_port()
    base, sandbox = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sandbox_port}"
    env = base_env(
        DATABASE_URL=postgres_url,
        REDIS_URL=redis_db,
        MAIL_BACKEND="file",
        MAIL_DIR=str(tmp_path / "mail"),
        FACESIGN_API_KEY="test-key",
        FACESIGN_API_URL=sandbox,
        FACESIGN_WEBHOOK_SECRET="whsec_e2e",
        PUBLIC_BASE_URL=base,
    )
    assert processes.run(env, "db", "upgrade").returncode == 0
    assert processes.run(env, "users", "add", "ada@example.com", "--id", "ada").returncode == 0
    processes.start("sandbox", env, "sandbox", "--port", str(sandbox_port))
    processes.start("serve", env, "serve", "--port", str(port))
    processes.start("worker", env, "worker", "--processes", "1", "--threads", "2")
    wait_http(f"{sandbox}/sandbox/enrollments", procs=processes)
    wait_http(f"{base}/readyz", procs=processes)
    enrolled = requests.post(
        f"{sandbox}/sandbox/enrollments", json={"email": "ada@example.com", "name": "Ada"}, timeout=5
    )
    assert enrolled.status_code == 201

    attempt_id, session_id = start_recovery(base)
    finish(sandbox, session_id, identity="ada@example.com")
    assert poll_status(base, attempt_id, timeout=60) == "approved", processes.logs()
    rows = audit_rows(processes, env)
    assert [(row["attemptId"], row["reason"]) for row in rows] == [(attempt_id, "verified")]
    reset_link(tmp_path / "mail")
