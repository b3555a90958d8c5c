"""What the worker and end-to-end benchmarks run against: a fresh PostgreSQL database, Redis, the sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import redis
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from adapters.db.attempts import create_attempt
from adapters.db.engine import Database
from adapters.db.migrate import upgrade
from adapters.db.models import Decision, OutgoingMail
from adapters.db.outbox import PENDING, SENT
from adapters.db.users import add_user
from adapters.queue.group_commit import GroupCommit
from adapters.queue.names import NAMESPACE, PROCESS_ACTOR, SESSIONS_QUEUE
from bench import procs
from domain.flow import build_recovery_flow

POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
EMAIL = "bench@example.com"
SECRET = "whsec_bench"  # noqa: S105 - signs the benchmark's own webhooks
# The mail pipeline's own cost (claim, compose, hand-over, mark): the file backend would add the
# filesystem's (about 0.7 ms per file on this ext4 VM), SMTP a mail server's.
MAIL_BACKEND = "console"


_LAST_DECISION = select(Decision.id, Decision.decided_at).order_by(Decision.id.desc()).limit(1)


@dataclass
class Stack:
    database_url: str
    sandbox_url: str
    sandbox: psutil.Process
    sessions: dict[str, list[str]]  # batch name -> session ids, each with a pending attempt
    workdir: Path
    redis: redis.Redis = field(default_factory=lambda: redis.Redis.from_url(REDIS_URL, socket_timeout=10))

    @property
    def env(self) -> dict[str, str]:
        """The service's configuration, as an operator would set it."""
        return {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": REDIS_URL,
            "FACESIGN_API_URL": self.sandbox_url,
            "FACESIGN_API_KEY": "bench",
            "FACESIGN_WEBHOOK_SECRET": SECRET,
            "AUDIT_PSEUDONYM_KEY": "bench-pseudonym-key",
            "MAIL_BACKEND": MAIL_BACKEND,
            "MAIL_DIR": str(self.workdir / "mail"),
            "PYTHONUNBUFFERED": "1",
            # The benchmarks measure our own throughput against the sandbox: FaceSign's budget out of the way.
            "FACESIGN_RATE_LIMIT": "100000000",
        }

    def set_latency(self, milliseconds: int) -> None:
        answer = httpx.post(f"{self.sandbox_url}/sandbox/faults", json={"latencyMs": milliseconds}, timeout=10)
        answer.raise_for_status()

    def redis_process(self) -> psutil.Process | None:
        """The Redis server's process when it runs on this machine (its CPU time is then measurable)."""
        host = self.redis.connection_pool.connection_kwargs.get("host")
        if host not in ("127.0.0.1", "localhost", "::1"):
            return None
        try:
            return psutil.Process(int(self.redis.info("server")["process_id"]))
        except (psutil.Error, KeyError, ValueError):
            return None  # another namespace (a container) or a proxy: not ours to measure

    def clear_queues(self) -> None:
        keys = list(self.redis.scan_iter(f"{NAMESPACE}:*", count=1000))
        if keys:
            self.redis.delete(*keys)

    def enqueue(self, session_ids: list[str]) -> None:
        """A message for each of these sessions, written as the receiver writes them: by its group commit,
        a few hundred to a round trip."""

        async def write() -> None:
            commit = GroupCommit(REDIS_URL, NAMESPACE, SESSIONS_QUEUE, PROCESS_ACTOR, max_pending=len(session_ids))
            try:
                await asyncio.gather(*(commit.put(session_id, None, None) for session_id in session_ids))
            finally:
                await commit.aclose()

        asyncio.run(write())

    def emails_sent(self, engine: Engine) -> int:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).where(OutgoingMail.status == SENT)) or 0)

    def emails_unsent(self, engine: Engine) -> int:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).where(OutgoingMail.status != SENT)) or 0)

    def emails_pending(self, engine: Engine) -> int:
        """Queued and not yet claimed by a sender."""
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).where(OutgoingMail.status == PENDING)) or 0)

    def decisions(self, engine: Engine) -> tuple[int, datetime | None]:
        """How many audit rows there are, and when the last was decided. Polled every few milliseconds
        while the workers run on the same cores, so it reads one index entry: ids are 1, 2, 3... (the
        chain's head + 1, never deleted), so the highest id is the count. A count(*) scanned the table."""
        with engine.connect() as connection:
            last = connection.execute(_LAST_DECISION).first()
        return (int(last.id), last.decided_at) if last else (0, None)


@contextmanager
def database() -> Iterator[str]:
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"fsr_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def stack(batches: dict[str, int], workdir: Path) -> Iterator[Stack]:
    """`batches`: how many finished sessions (with pending attempts) each named batch needs."""
    attempts = {name: [secrets.token_urlsafe(18) for _ in range(n)] for name, n in batches.items()}
    attempts_file, sessions_file = workdir / "attempts.json", workdir / "sessions.json"
    attempts_file.write_text(json.dumps([a for batch in attempts.values() for a in batch]))
    port = procs.free_port()
    argv = [str(procs.BIN / "python"), "-m", "bench.sandbox_proc", str(port), str(attempts_file), str(sessions_file)]
    with ExitStack() as exits:
        url = exits.enter_context(database())
        sandbox = exits.enter_context(procs.running([*argv, EMAIL], {}, workdir / "sandbox.log", port=port))
        session_of = json.loads(sessions_file.read_text())
        database_handle = Database.connect(url)
        upgrade(database_handle)
        flow, now = build_recovery_flow(), datetime.now(UTC)
        with database_handle.transaction() as db:
            add_user(db, EMAIL, user_id="bench-user", name="Bench User")
            for batch in attempts.values():
                for attempt_id in batch:
                    create_attempt(db, attempt_id, session_of[attempt_id], flow, "https://bench", now)
        database_handle.dispose()
        result = Stack(
            database_url=url,
            sandbox_url=f"http://127.0.0.1:{port}",
            sandbox=sandbox,
            sessions={name: [session_of[a] for a in batch] for name, batch in attempts.items()},
            workdir=workdir,
        )
        result.clear_queues()
        try:
            yield result
        finally:
            result.clear_queues()
            result.redis.close()


def wait_until(predicate: object, timeout: float, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark condition not met within {timeout} s")
        time.sleep(interval)
