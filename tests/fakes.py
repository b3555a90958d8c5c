"""In-memory stand-ins shared by integration tests."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from adapters.attempts import create_attempt
from adapters.db import make_engine, session_factory, transaction
from adapters.mailer import FileMailer
from adapters.migrate import upgrade
from adapters.users import add_user
from config import Settings
from domain.flow import build_recovery_flow
from workers.context import Deps


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

    def get_session(self, session_id: str) -> dict[str, Any]:
        with self.lock:
            self.calls += 1
        return self.sessions[session_id]

    def create_session(self, reference: str, metadata: Any, flow: Any) -> dict[str, Any]:
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

    def enqueue(self, session_id: str, event_id: str | None) -> str:
        raise AssertionError("this endpoint must not enqueue")

    async def enqueue_async(self, session_id: str, event_id: str | None) -> str:
        return self.enqueue(session_id, event_id)

    def ping(self) -> None:
        return None


def make_deps(database_url: str, mail_dir: str, **overrides: Any) -> tuple[Deps, FakeFaceSign]:
    engine = make_engine(database_url)
    upgrade(engine)
    settings = Settings(database_url=database_url, mail_backend="file", mail_dir=mail_dir, **overrides)
    fake = FakeFaceSign()
    deps = Deps(settings=settings, engine=engine, facesign=fake, mailer=FileMailer(mail_dir))  # type: ignore[arg-type]
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
    with transaction(session_factory(deps.engine)) as db:
        if user:
            add_user(db, email, user_id=f"u_{attempt_id}", name="Ada")
        create_attempt(db, attempt_id, session_id, build_recovery_flow(), "https://x", datetime.now(UTC), 1800)
    fake.complete(session_id, attempt_id, email=email, **session)
    return session_id
