"""What the use cases need at run time, built once per process from the settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from adapters.appevents.sender import EventSender
from adapters.db.engine import Database, Timeouts
from adapters.db.pseudonyms import pseudonym_key
from adapters.facesign.budget import budget_for
from adapters.facesign.client import FaceSignClient
from adapters.facesign.flow_file import load_flow
from adapters.mail.backends import Mailer, make_mailer
from adapters.queue.coalesce import InProcessPending, PendingFetches, RedisPending
from config import Settings
from domain.flow import Flow
from domain.lock import LockPolicy
from domain.rules import Policy


@dataclass
class Deps:
    settings: Settings
    db: Database
    facesign: FaceSignClient
    mailer: Mailer
    # The coalescing markers the worker clears before it fetches: shared with the receiver's
    # SessionEvents in embedded mode, in Redis otherwise.
    pending: PendingFetches = field(default_factory=InProcessPending)
    _digest_key: bytes | None = field(default=None, init=False, repr=False)
    _digest_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, threads: int = 4, db: Database | None = None) -> Deps:
        """`threads`: how many threads may use the database and FaceSign at once (each gets a connection)."""
        redis_url = settings.redis_url
        budget = budget_for(settings.facesign_rate_limit, settings.facesign_interactive_share, redis_url)
        pending = RedisPending(redis_url) if redis_url else InProcessPending(settings.webhook_tolerance)
        return cls(
            settings=settings,
            db=db
            or Database.connect(settings.database_url, Timeouts.of(settings), **_pool(settings.database_url, threads)),
            facesign=FaceSignClient(
                settings.facesign_api_url,
                settings.facesign_api_key or "sandbox",
                timeout=settings.facesign_timeout,
                pool_size=max(32, threads),
                budget=budget,
            ),
            mailer=make_mailer(settings.mail_backend, settings.mail_dir, settings.smtp_url),
            pending=pending,
        )

    @cached_property
    def policy(self) -> Policy:
        return Policy(self.settings.attempt_ttl, self.settings.require_conversation_confirmation)

    @cached_property
    def lock_policy(self) -> LockPolicy:
        return LockPolicy(self.settings.recovery_lock_threshold, self.settings.recovery_lock_window)

    @cached_property
    def event_sender(self) -> EventSender:
        """Signs and posts the application's events; only built where APP_WEBHOOK_SECRET is set."""
        if self.settings.app_webhook_secret is None:
            raise RuntimeError("APP_WEBHOOK_SECRET is unset: there is nothing to sign events with")
        return EventSender(self.settings.app_webhook_secret)

    @cached_property
    def flow(self) -> Flow:
        return load_flow(self.settings.flow_file)

    def digest_key(self) -> bytes:
        """The audit pseudonym key, read on first use: it never changes for a database."""
        with self._digest_lock:
            if self._digest_key is None:
                with self.db.reading() as session:
                    self._digest_key = pseudonym_key(
                        session, self.settings.audit_pseudonym_key, allow_stored=self.settings.sandbox_mode
                    )
            return self._digest_key

    def close(self) -> None:
        if "event_sender" in self.__dict__:
            self.event_sender.close()
        self.facesign.close()
        self.db.dispose()


def _pool(url: str, threads: int) -> dict[str, Any]:
    """A connection per thread stays open, plus a few for the reconciler and health checks."""
    if url.startswith("sqlite"):
        return {}
    return {"pool_size": threads + 4, "max_overflow": 4, "pool_recycle": 300}
