"""What the actors need at run time, built once per process on first use."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from adapters import audit_log
from adapters.db import make_engine, session_factory
from adapters.facesign import FaceSignClient
from adapters.mailer import Mailer, make_mailer
from config import Settings
from domain.rules import Policy

# No pool_pre_ping: it is a round trip on every checkout, four per approved decision and its email.
# A connection the server dropped (restart, failover, an idle timeout on the way) then fails the
# statement that uses it instead: SQLAlchemy invalidates the whole pool on that disconnect error, the
# transaction rolls back whole, and Dramatiq's bounded retry runs the message again on a fresh
# connection. The price is a retried message (backoff: at least a second) per thread that held a dead
# connection. Nothing is lost or doubled: every step is safe to run again, and a send whose mark-sent
# failed stays `sending`, as after a crash. pool_recycle retires connections before the idle timeouts
# of typical proxies and firewalls. The receiver keeps pool_pre_ping: no retry stands behind it.
WORKER_POOL = {"pool_pre_ping": False, "pool_recycle": 300}
# A connection per actor thread stays open: a smaller pool closes what it cannot keep idle whenever
# most threads wait on FaceSign, and opens new ones (a PostgreSQL backend each) at the next burst.
# The few extra are for the reconciler and the mail actor's release path.
POOL_SLACK = 4


def worker_pool(threads: int) -> dict[str, Any]:
    return {**WORKER_POOL, "pool_size": threads + POOL_SLACK, "max_overflow": POOL_SLACK}


@dataclass
class Deps:
    settings: Settings
    engine: Engine
    facesign: FaceSignClient
    mailer: Mailer
    _digest_key: bytes | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine | None = None) -> Deps:
        return cls(
            settings=settings,
            engine=engine or make_engine(settings.database_url, **worker_pool(settings.worker_threads)),
            facesign=FaceSignClient(
                settings.facesign_api_url,
                settings.facesign_api_key or "sandbox",
                timeout=settings.facesign_timeout,
                pool_size=max(32, settings.worker_threads),
            ),
            mailer=make_mailer(settings.mail_backend, settings.mail_dir, settings.smtp_url),
        )

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return session_factory(self.engine)

    @cached_property
    def policy(self) -> Policy:
        return Policy(self.settings.attempt_ttl, self.settings.require_conversation_confirmation)

    def digest_key(self, session: Session | Connection) -> bytes:
        """The audit pseudonym key, read on first use: it never changes for a database."""
        if self._digest_key is None:  # racing threads read the same value; either may keep it
            self._digest_key = audit_log.pseudonym_key(session, self.settings.audit_pseudonym_key)
        return self._digest_key


_current: Deps | None = None
_guard = threading.Lock()


def install(deps: Deps | None) -> None:
    """Used by `serve` (embedded mode) and tests to hand actors their dependencies."""
    global _current
    _current = deps


def current() -> Deps:
    """The installed dependencies, or ones built from the environment (worker processes)."""
    global _current
    with _guard:
        if _current is None:
            _current = Deps.from_settings(Settings.from_env())
        return _current
