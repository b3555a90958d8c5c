"""What the actors need at run time, built once per process on first use."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adapters.db import make_engine, session_factory
from adapters.facesign import FaceSignClient
from adapters.mailer import Mailer, make_mailer
from config import Settings
from domain.rules import Policy


@dataclass
class Deps:
    settings: Settings
    engine: Engine
    facesign: FaceSignClient
    mailer: Mailer

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine | None = None) -> Deps:
        return cls(
            settings=settings,
            engine=engine or make_engine(settings.database_url),
            facesign=FaceSignClient(
                settings.facesign_api_url, settings.facesign_api_key or "sandbox", timeout=settings.facesign_timeout
            ),
            mailer=make_mailer(settings.mail_backend, settings.mail_dir, settings.smtp_url),
        )

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return session_factory(self.engine)

    @cached_property
    def policy(self) -> Policy:
        return Policy(self.settings.attempt_ttl, self.settings.require_conversation_confirmation)


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
