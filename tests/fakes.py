"""In-memory stand-ins shared by integration tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from adapters.db.attempts import create_attempt
from adapters.db.engine import Database
from adapters.db.migrate import upgrade
from adapters.db.users import add_user
from adapters.mail.backends import FileMailer
from config import Settings
from domain.flow import build_recovery_flow
from usecases.deps import Deps


class FakeFaceSign:
    """Answers `get_session` from a dict; counts calls; thread-safe enough for races."""

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self.lock = threading.Lock()

    def complete(
        self,
        session_id: str,
        reference: str,
        email: str | None = "ada@example.com",
        recognition: str = "recognized",
        liveness: str = "livenessDetected",
        status: str = "complete",
    ) -> None:
        reports = [
            {"nodeId": "recognition", "outcome": recognition, "report": {"email": email, "name": "Ada"}},
            {"nodeId": "liveness_known", "outcome": liveness, "report": {}},
            {"nodeId": "confirm_identity", "outcome": "identity_confirmed", "report": {}},
        ]
        self.sessions[session_id] = {
            "session": {
                "id": session_id,
                "status": status,
                "clientReferenceId": reference,
                "report": {"nodeReports": reports} if status == "complete" else None,
            },
            "clientSecret": {"url": f"https://sandbox.invalid/s/{session_id}"},
        }

    def get_session(
        self, session_id: str, *, caller: Any = None, before_send: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        if before_send is not None:  # as the real client: once a token is in hand, before the request
            before_send()
        with self.lock:
            self.calls += 1
        return self.sessions[session_id]

    def create_session(self, reference: str, metadata: Any, flow: Any, **_: Any) -> dict[str, Any]:
        session_id = f"sess_{reference}"
        self.sessions[session_id] = {
            "session": {"id": session_id, "status": "created"},
            "clientSecret": {"url": f"https://sandbox.invalid/s/{session_id}"},
        }
        return self.sessions[session_id]


class NoEvents:
    """The queue handed to endpoints that must never enqueue."""

    in_process = True
    broker = None

    def enqueue(self, session_id: str, event_id: str | None, event_at: int | None = None) -> str:
        raise AssertionError("this endpoint must not enqueue")

    async def enqueue_async(self, session_id: str, event_id: str | None, event_at: int | None = None) -> str:
        return self.enqueue(session_id, event_id)

    def ping(self) -> None:
        return None


def migrated(database_url: str) -> Database:
    """A database at the latest schema."""
    db = Database.connect(database_url)
    upgrade(db)
    return db


# Outside the sandbox the pseudonym key must be configured; tests run as production would.
TEST_PSEUDONYM_KEY = "test-pseudonym-key"


def make_deps(database_url: str, mail_dir: str, **overrides: Any) -> tuple[Deps, FakeFaceSign]:
    overrides.setdefault("audit_pseudonym_key", TEST_PSEUDONYM_KEY)
    settings = Settings(database_url=database_url, mail_backend="file", mail_dir=mail_dir, **overrides)
    fake = FakeFaceSign()
    deps = Deps(settings=settings, db=migrated(database_url), facesign=fake, mailer=FileMailer(mail_dir))  # type: ignore[arg-type]
    return deps, fake


def seed_attempt(
    deps: Deps,
    fake: FakeFaceSign,
    attempt_id: str = "att1",
    email: str = "ada@example.com",
    user: bool = True,
    **session: Any,
) -> str:
    """A local user, a pending attempt and its finished FaceSign session; returns the session id."""
    session_id = f"sess_{attempt_id}"
    with deps.db.transaction() as db:
        if user:
            add_user(db, email, user_id=f"u_{attempt_id}", name="Ada")
        create_attempt(db, attempt_id, session_id, build_recovery_flow(), "https://x", datetime.now(UTC))
    fake.complete(session_id, attempt_id, email=email, **session)
    return session_id


def append_decision(
    session: Any, decision: Any, *, digest_key: bytes = b"k" * 32, head: Any = None, **fields: Any
) -> dict[str, Any]:
    """Append one audit row in the caller's transaction; `fields`: audit_log.new_row()'s keyword arguments."""
    from adapters.db import audit_log

    row = audit_log.new_row(decision, digest_key=digest_key, **fields)
    return audit_log.append(session, row, head or audit_log.lock_chain(session))


def make_services(settings: Settings, *, db: Database | None = None, facesign: Any = None, events: Any = None) -> Any:
    """The receiver's services over a migrated database, with stand-ins where a test gives none."""
    from dataclasses import replace

    from adapters.mail.backends import ConsoleMailer
    from receiver.services import Services

    if settings.audit_pseudonym_key is None and not settings.sandbox_mode:
        settings = replace(settings, audit_pseudonym_key=TEST_PSEUDONYM_KEY)
    deps = Deps(
        settings=settings,
        db=db or migrated(settings.database_url),
        facesign=facesign if facesign is not None else FakeFaceSign(),
        mailer=ConsoleMailer(),
    )
    return Services(deps, events if events is not None else NoEvents())
