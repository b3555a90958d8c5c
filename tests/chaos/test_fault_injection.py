"""The fault-injection suite: real processes, real Redis and PostgreSQL, and everything going wrong at once.

Recoveries with a mix of outcomes while the sandbox answers 10% 500s, 5% 429s and ~5% too slowly,
drops 5% of webhooks and duplicates 30% (sent concurrently); a worker is SIGKILLed every few seconds
and restarted; Redis stalls for 7 s (longer than the workers' Redis timeout), is full for 3 s, and is
restarted once with its data lost; FaceSign is slower than the client's timeout for 3 s; old events are
re-delivered hours late; the customer's application answers 500 to 20% of the signed events it is sent.
After the drain and a reconcile, every attempt must be decided exactly once and correctly, no attempt
may be left pending, and every decision's event must have reached the application.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, select

from adapters.db.audit_log import to_record
from adapters.db.models import AppEventDelivery, Decision, OutgoingMail, RecoveryAttempt
from adapters.queue.broker import build_broker
from adapters.queue.dead_letters import list_dead_letters
from domain.audit_chain import GENESIS, chain_hash
from tests.app_receiver import AppReceiver
from tests.chaos.harness import (
    APP_SECRET,
    LOCAL_USERS,
    SECRET,
    STRANGERS,
    Chaos,
    RedisServer,
    Workers,
    choices_for,
    delivered_event,
    late_duplicate,
    post_with_retries,
    stranger_email,
    user_email,
    wait_until,
)
from tests.conftest import free_port, unavailable
from tests.e2e.conftest import Processes, base_env, wait_http

RECOVERIES = int(os.environ.get("CHAOS_RECOVERIES", "500"))
CLIENTS = 8  # concurrent recovery pages
APP_FAILURE_RATE = 0.20  # the application answers 500 to this share of deliveries
FAULTS = {"errorRate": 0.10, "rate429": 0.05, "dropRate": 0.05, "duplicateRate": 0.30, "seed": 20261126}

pytestmark = [pytest.mark.chaos, pytest.mark.redis, pytest.mark.postgres, pytest.mark.timeout(360)]


def write_users(path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "id", "name"])
        for index in range(LOCAL_USERS):
            writer.writerow([user_email(index), f"u{index}", f"User {index}"])
    return path


def enroll_everyone(sandbox: str) -> None:
    people = [(user_email(i), f"User {i}") for i in range(LOCAL_USERS)]
    people += [(stranger_email(i), f"Stranger {i}") for i in range(STRANGERS)]
    for email, name in people:
        answer = requests.post(f"{sandbox}/sandbox/enrollments", json={"email": email, "name": name}, timeout=5)
        assert answer.status_code == 201, answer.text


def run_one(base: str, sandbox: str, number: int) -> tuple[str, str, str, str]:
    created = post_with_retries(f"{base}/recoveries", json={"type": "forgot_password"})
    assert created.status_code == 201, created.text
    attempt_id, url = created.json()["id"], created.json()["url"]
    session_id = url.rstrip("/").rsplit("/", 1)[-1]
    choices, outcome, reason = choices_for(number)
    done = requests.post(f"{sandbox}/sandbox/sessions/{session_id}/complete", json=choices, timeout=15)
    assert done.status_code == 200, done.text
    return attempt_id, session_id, outcome, reason


def send_late_duplicates(base: str, sandbox: str, sessions: list[str], rng: random.Random) -> int:
    """Re-deliver 10% of events hours late; every third of them twice at the same moment."""
    sent = 0
    for index, session_id in enumerate(rng.sample(sessions, max(1, len(sessions) // 10))):
        event_id = delivered_event(sandbox, session_id)
        if event_id is None:
            continue  # its webhook was dropped: nothing to duplicate
        copies = 2 if index % 3 == 0 else 1
        threads = [
            threading.Thread(target=late_duplicate, args=(base, session_id, event_id, rng)) for _ in range(copies)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sent += copies
    return sent


def verify_chain(rows: list[Decision]) -> None:
    previous = GENESIS
    for row in rows:
        record = to_record(row)
        assert record["prevHash"] == previous, f"chain broken before row {row.id}"
        assert chain_hash(previous, record) == record["hash"], f"row {row.id} does not hash to its stored hash"
        previous = record["hash"]


def test_no_decision_is_lost_or_doubled(processes: Processes, tmp_path: Path, postgres_url: str, capsys: Any) -> None:
    if shutil.which("redis-server") is None:
        unavailable("redis-server (binary)", FileNotFoundError("redis-server"))
    started = time.monotonic()
    redis_server = RedisServer(free_port(), tmp_path)
    redis_server.start()
    application = AppReceiver(APP_SECRET, free_port(), fail_rate=APP_FAILURE_RATE).start()
    try:
        summary = scenario(processes, tmp_path, postgres_url, redis_server, application)
    finally:
        processes.stop_all()
        redis_server.stop()
        application.stop()
    with capsys.disabled():
        print(f"\n{summary}\nchaos scenario took {time.monotonic() - started:.0f}s")


def scenario(
    processes: Processes, tmp_path: Path, postgres_url: str, redis_server: RedisServer, application: AppReceiver
) -> str:
    port, sandbox_port = free_port(), free_port()
    base, sandbox = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sandbox_port}"
    mail_dir = tmp_path / "mail"
    env = base_env(
        DATABASE_URL=postgres_url,
        REDIS_URL=redis_server.url,
        MAIL_BACKEND="file",
        MAIL_DIR=str(mail_dir),
        FACESIGN_API_KEY="chaos-key",
        FACESIGN_API_URL=sandbox,
        FACESIGN_WEBHOOK_SECRET=SECRET,
        FACESIGN_TIMEOUT="1",
        PUBLIC_BASE_URL=base,
        RECOVERIES_PER_MINUTE="1000000",
        RECOVERIES_PER_MINUTE_TOTAL="1000000",
        # Far above what FaceSign allows: this scenario is about faults (tests/chaos/test_fleet_budget.py
        # is about the budget). Its injected 429s still pause every caller for their Retry-After.
        FACESIGN_RATE_LIMIT="1000000",
        # A killed worker's messages must come back within seconds for the drain to finish in time.
        DRAMATIQ_HEARTBEAT_TIMEOUT="3000",
        DRAMATIQ_MAINTENANCE_CHANCE="200000",
        APP_WEBHOOK_URL=application.url,
        APP_WEBHOOK_SECRET=APP_SECRET,
        # Retries after about 2, 4, 8 s, then every 15 s: a day's schedule compressed into two minutes.
        APP_WEBHOOK_RETRY_WINDOW="120",
        # Shorter than the stall, so that fetches time out mid-stall and the strand sweep has work to do.
        WORKER_REDIS_TIMEOUT="3",
    )
    assert processes.run(env, "db", "upgrade").returncode == 0
    imported = processes.run(env, "users", "import", str(write_users(tmp_path / "users.csv")))
    assert imported.returncode == 0, imported.stderr
    processes.start("sandbox", env, "sandbox", "--port", str(sandbox_port))
    processes.start("serve", env, "serve", "--port", str(port))
    workers = Workers(processes, env, free_port)
    workers.start_both()
    wait_http(f"{sandbox}/sandbox/enrollments", procs=processes)
    wait_http(f"{base}/readyz", procs=processes)
    enroll_everyone(sandbox)
    assert requests.post(f"{sandbox}/sandbox/faults", json=FAULTS, timeout=5).status_code == 200

    chaos = Chaos(sandbox, workers)
    chaos.start()
    expected: dict[str, tuple[str, str]] = {}
    sessions: list[str] = []
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(run_one, base, sandbox, number) for number in range(RECOVERIES)]
        for finished, future in enumerate(as_completed(futures), start=1):
            attempt_id, session_id, outcome, reason = future.result()
            expected[attempt_id] = (outcome, reason)
            sessions.append(session_id)
            if finished == RECOVERIES // 8:
                chaos.later("slow_vendor", lambda: chaos.slow_vendor(3.0))
            if finished == RECOVERIES // 4:
                chaos.later("redis_stall", lambda: redis_server.stall(7.0))
            if finished == RECOVERIES // 2:
                redis_server.restart_empty()
            if finished == 3 * RECOVERIES // 4:
                chaos.later("redis_full", lambda: redis_server.full_for(3.0))
    late = send_late_duplicates(base, sandbox, sessions, random.Random(7))  # noqa: S311

    engine = create_engine(postgres_url)

    def pending() -> int:
        with engine.connect() as connection:
            query = select(func.count()).where(RecoveryAttempt.status == "pending")
            return int(connection.scalar(query.select_from(RecoveryAttempt)) or 0)

    # Drain: the broker empty and no attempt decided for a while (the rest lost their webhook or message).
    history: list[tuple[float, int]] = []

    def drained() -> bool:
        history.append((time.monotonic(), pending()))
        recent = [count for at, count in history if at >= history[-1][0] - 5]
        settled = history[-1][0] - history[0][0] >= 5 and len(set(recent)) == 1
        return redis_server.in_flight() == 0 and (history[-1][1] == 0 or settled)

    wait_until(drained, timeout=90)
    chaos.stop()
    assert wait_until(lambda: redis_server.in_flight() == 0, timeout=60), "the broker did not drain"
    left_for_reconciler = pending()
    reconcile_env = {**env, "RECONCILE_AFTER": "0"}
    passes_until = time.monotonic() + 60
    while True:  # a pass leaves to the next what an injected 429's pause kept it from fetching
        result = processes.run(reconcile_env, "reconcile", "--once")
        assert result.returncode == 0, result.stderr[-2000:]
        if pending() == 0 or time.monotonic() > passes_until:
            break
    wait_until(lambda: redis_server.in_flight() == 0, timeout=30)
    check_metrics(base, workers.metrics())
    summary = check(engine, expected, mail_dir, redis_server, workers.kills, late, left_for_reconciler, chaos.events)
    return f"{summary}\n{check_app_events(engine, application, processes, reconcile_env)}"


def check_app_events(engine: Any, application: AppReceiver, processes: Processes, reconcile_env: dict[str, str]) -> str:
    """Every decision's event reaches the application despite its 500s and the killed workers; a
    delivery a killed worker held is taken back by the reconciler once its lease runs out."""
    with engine.connect() as connection:
        decided = set(connection.scalars(select(Decision.attempt_id)).all())

    def arrived() -> set[str]:
        return {
            item.payload["data"]["attemptId"]
            for item in list(application.accepted)
            if item.payload["type"].startswith("recovery.") and item.payload["type"] != "recovery.locked"
        }

    def all_arrived() -> bool:
        if decided <= arrived():
            return True
        processes.run(reconcile_env, "reconcile", "--once")
        return decided <= arrived()

    wait_until(all_arrived, timeout=120, interval=5)
    with engine.connect() as connection:
        states = dict(
            connection.execute(select(AppEventDelivery.status, func.count()).group_by(AppEventDelivery.status)).all()
        )
    missing = decided - arrived()
    refused = len(application.refused)
    summary = f"app_events_accepted={len(application.accepted)} app_refused={refused} deliveries={states}"
    assert not missing, f"{summary}: no event for {sorted(missing)[:5]}"
    assert application.unverified == 0, summary
    assert refused > 0, "the application never failed: the scenario proves nothing"
    assert any(item.payload["type"] == "recovery.locked" for item in application.accepted), summary
    return summary


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples with these labels in a Prometheus exposition."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                total += item.value
    return total


def check_metrics(base: str, worker_text: str) -> None:
    """The faults are visible where an operator looks: the worker's and the receiver's /metrics."""
    receiver_text = requests.get(f"{base}/metrics", timeout=5).text
    for status in ("500", "429", "timeout"):
        seen = sum(sample(text, "facesign_api_errors_total", status=status) for text in (worker_text, receiver_text))
        assert seen > 0, f"no FaceSign {status} counted"
    assert sample(worker_text, "facesign_api_request_duration_seconds_count", operation="get_session") > 0
    assert sample(worker_text, "dramatiq_messages_total", actor_name="process_session_event") > 0
    assert "facesign_queue_depth{" in receiver_text and "facesign_dead_letters{" in receiver_text
    assert sample(receiver_text, "facesign_dead_letters", queue="sessions") == 0
    assert sample(receiver_text, "facesign_api_request_duration_seconds_count", operation="create_session") > 0
    assert sample(receiver_text, "facesign_decisions_total") > 0


def check(
    engine: Any,
    expected: dict[str, tuple[str, str]],
    mail_dir: Path,
    redis_server: RedisServer,
    kills: int,
    late: int,
    reconciled: int,
    events: list[str],
) -> str:
    with engine.connect() as connection:
        attempts = dict(connection.execute(select(RecoveryAttempt.id, RecoveryAttempt.status)).all())
        mails = connection.execute(
            select(OutgoingMail.attempt_id, OutgoingMail.id, OutgoingMail.status, OutgoingMail.kind)
        ).all()
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        rows = list(session.scalars(select(Decision).order_by(Decision.id)))
        verify_chain(rows)
        decided = {row.attempt_id: (row.outcome, row.reason) for row in rows}

    lost = [attempt for attempt in expected if attempt not in decided]
    duplicates = len(rows) - len(decided)
    wrong = {a: (decided[a], want) for a, want in expected.items() if a in decided and decided[a] != want}
    # A start that FaceSign did not answer in time (the client started again) is closed as `failed`.
    failed_starts = {a for a in set(attempts) - set(expected) if attempts[a] == "failed"}
    strangers = set(attempts) - set(expected) - failed_starts
    sent_files = {path.stem for path in mail_dir.glob("*.eml")}
    approved = {a for a, (outcome, _) in expected.items() if outcome == "approved"}
    mail_by_attempt = {attempt_id: (mail_id, status) for attempt_id, mail_id, status, _ in mails}
    reset_mail = {attempt_id for attempt_id, _, _, kind in mails if kind == "reset"}
    alerted = {attempt_id for attempt_id, _, _, kind in mails if kind != "reset"}
    stuck = {mail_id for mail_id, status in mail_by_attempt.values() if status == "sending"}
    sent = {mail_id for mail_id, status in mail_by_attempt.values() if status == "sent"}
    never_emailed = {mail_id for mail_id, _ in mail_by_attempt.values()} - sent_files
    dead = list(list_dead_letters(build_broker(redis_server.url)))

    summary = (
        f"recoveries={len(expected)} decided={len(decided)} duplicates={duplicates} lost={len(lost)} "
        f"emails={len(sent_files)} dead_letters={len(dead)}"
    )
    faults = " ".join(f"{name}=1" for name in ("slow_vendor", "redis_stall", "redis_full") if name in events)
    details = (
        f"worker_kills={kills} redis_restarts=1 {faults} late_duplicates={late} left_for_reconciler={reconciled} "
        f"failed_starts={len(failed_starts)} mail_unsent={len(stuck | never_emailed)}"
    )
    assert not lost, f"{summary}: undecided attempts {lost[:5]}"
    assert duplicates == 0 and not strangers, summary
    assert not wrong, f"wrong decisions: {list(wrong.items())[:5]}"
    assert reset_mail == approved, "a reset mail for a denied attempt, or none for an approved one"
    # Deepfakes of local users alert their owner (at most hourly, and once more when the lock is set).
    assert alerted and all(expected[a] == ("denied", "deepfake_detected") for a in alerted)
    assert sent_files <= {mail_id for mail_id, _ in mail_by_attempt.values()}
    # Exactly one email per approved attempt: a send interrupted by a SIGKILL is resumed by the
    # reconciler, which the file backend makes harmless (a mail's file is named by its id).
    assert not stuck and not never_emailed, f"{details}: unsent mails {sorted(stuck | never_emailed)[:5]}"
    assert sent == sent_files == {mail_id for mail_id, _ in mail_by_attempt.values()}, details
    assert not dead, [(d.actor, d.session_id, d.failure) for d in dead]
    assert kills >= 3
    assert set(events) == {"slow_vendor", "redis_stall", "redis_full"}, events
    return f"{summary}\n{details}"
