"""Schema-driven fuzzing of a live `serve`, embedded and in Redis mode, from its own OpenAPI document.

Schemathesis (its command line, as an operator would run it) generates requests for every operation,
positive and negative, follows the document's links (start a recovery, then read its status) and
checks every response against the document: no 5xx, documented status codes, content types, headers
and bodies. Deterministic generation and a fixed number of examples per operation keep the run
identical from one CI run to the next. The webhook gets only unsigned and wrongly signed bodies from
it; afterwards the metrics (and in Redis mode the queue itself) show that none was enqueued, and one
correctly signed event shows that the same checks would have seen it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import redis
import requests

from adapters.queue.group_commit import queue_keys
from adapters.queue.names import NAMESPACE, SESSIONS_QUEUE
from domain.signature import HEADER, sign
from tests.conftest import free_port
from tests.e2e.conftest import Processes, base_env, wait_http

EXAMPLES_PER_OPERATION = 25
SECRET = "fuzz-webhook-secret-0123456789abcdef"
SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
# Answering 400 to a well-formed but unknown reset token, or to a dashboard window of more than 366
# days, is the contract; no schema can say so, so schemathesis's guess that schema-valid input must be
# accepted is left out. Every other check runs.
EXCLUDED_CHECKS = "positive_data_acceptance"


def fuzz(base: str, token: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    argv = [
        SCHEMATHESIS,
        "run",
        f"{base}/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        EXCLUDED_CHECKS,
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--header",
        f"Authorization: Bearer {token}",
        "--no-color",
    ]
    return subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=240)  # noqa: S603


def webhook_results(base: str) -> dict[str, float]:
    text = requests.get(f"{base}/metrics", timeout=5).text
    found = re.findall(r'^facesign_webhooks_received_total\{result="(\w+)"\} (\S+)$', text, re.MULTILINE)
    return {result: float(value) for result, value in found}


def signature_failures(base: str) -> set[str]:
    text = requests.get(f"{base}/metrics", timeout=5).text
    found = re.findall(r'^facesign_webhook_signature_failures_total\{reason="(\w+)"\} (\S+)$', text, re.MULTILINE)
    return {reason for reason, value in found if float(value) > 0}


def signed_event(base: str, session_id: str) -> requests.Response:
    body = json.dumps({"id": "evt_fuzz_control", "type": "session.status", "sessionId": session_id}).encode()
    headers = {HEADER: sign(SECRET, int(time.time()), body), "Content-Type": "application/json"}
    return requests.post(f"{base}/webhooks/facesign", data=body, headers=headers, timeout=10)


def start_serve(processes: Processes, tmp_path: Path, **env: str) -> tuple[str, str]:
    """A migrated database, an auditor token and `serve` on the built-in sandbox: (base URL, token)."""
    port = free_port()
    environment = base_env(
        DATABASE_URL=f"sqlite:///{tmp_path}/fuzz.db",
        FACESIGN_SANDBOX="1",
        SANDBOX_PORT=str(free_port()),
        FACESIGN_WEBHOOK_SECRET=SECRET,
        RECOVERIES_PER_MINUTE="100000",  # the stateful runs start many recoveries from one address
        RECOVERIES_PER_MINUTE_TOTAL="100000",
        MAIL_BACKEND="file",
        MAIL_DIR=str(tmp_path / "mail"),
        **env,
    )
    assert processes.run(environment, "db", "upgrade").returncode == 0
    created = processes.run(environment, "auditor-token", "create", "fuzzer")
    assert created.returncode == 0, created.stderr
    token = created.stdout.split()[0]
    processes.start("serve", environment, "serve", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/readyz", procs=processes)
    return base, token


def assert_fuzzed_clean(result: subprocess.CompletedProcess[str], processes: Processes) -> None:
    summary = result.stdout[-6000:]
    assert result.returncode == 0, f"schemathesis found failures:\n{summary}\n{result.stderr[-2000:]}"
    links = re.search(r"API Links:\s+(\d+) covered", result.stdout)
    assert links and int(links.group(1)) >= 1, f"the stateful phase followed no link:\n{summary}"
    assert "Traceback" not in processes.logs(), processes.logs()


def test_fuzz_embedded_serve(processes: Processes, tmp_path: Path) -> None:
    base, token = start_serve(processes, tmp_path)
    result = fuzz(base, token, tmp_path)
    assert_fuzzed_clean(result, processes)

    results = webhook_results(base)
    assert results.get("invalid_signature", 0) > 0, results
    assert results.get("accepted", 0) == 0, f"a fuzzed webhook was enqueued: {results}"
    failures = signature_failures(base)
    assert "missing" in failures and failures & {"malformed", "mismatch"}, f"unsigned and wrongly signed: {failures}"
    assert signed_event(base, "sess_fuzz_control").status_code == 200
    assert webhook_results(base)["accepted"] == 1


def test_fuzz_redis_mode_serve(processes: Processes, tmp_path: Path, redis_url: str) -> None:
    # A database of its own on the shared Redis, emptied before and after: `serve` uses the service's
    # fixed key names, and a run's coalescing marker or seen event id would otherwise outlive it and
    # make the control event of a run within their TTL a coalesced one that never reaches the queue.
    redis_db = redis_url.rsplit("/", 1)[0] + "/13"
    client = redis.Redis.from_url(redis_db)
    client.flushdb()
    _, queue = queue_keys(NAMESPACE, SESSIONS_QUEUE)
    try:
        base, token = start_serve(processes, tmp_path, REDIS_URL=redis_db)
        result = fuzz(base, token, tmp_path)
        assert_fuzzed_clean(result, processes)

        assert client.llen(queue) == 0, "a fuzzed webhook reached the queue"
        results = webhook_results(base)
        assert results.get("invalid_signature", 0) > 0 and results.get("accepted", 0) == 0, results
        assert signed_event(base, "sess_fuzz_control").status_code == 200
        assert client.llen(queue) == 1 and webhook_results(base)["accepted"] == 1
    finally:
        client.flushdb()  # no worker runs here: take our one message, its marker and event id back out
        client.close()
