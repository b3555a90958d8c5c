"""Everything the sandbox remembers: sessions, enrolled identities, delivery attempts and fault knobs.

One lock guards it all; every method is quick, so the async handlers may call them directly.
"""

from __future__ import annotations

import copy
import random
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.delivery import Backoff, Deliverer, new_event_id
from sandbox.faults import RATE_KNOBS, Faults
from sandbox.report import IDENTITY_NONE, IDENTITY_UNKNOWN, LIVENESS_CHOICES, Choices, build_report
from sandbox.traffic import Traffic

CREATED, IN_PROGRESS, COMPLETE, INCOMPLETE = "created", "inProgress", "complete", "incomplete"
FINISHED = (COMPLETE, INCOMPLETE)


class SessionNotFound(LookupError):
    pass


class SessionFinished(RuntimeError):
    pass


class BadChoice(ValueError):
    """A caller error; the message is safe to show."""


@dataclass
class _Session:
    id: str
    client_reference_id: Any
    metadata: Any
    flow: list[Any]
    video_ai: Any
    created_at: int
    expires_at: int
    status: str = CREATED
    report: dict[str, Any] | None = None
    deliveries: list[dict[str, Any]] = field(default_factory=list)


def _now_ms() -> int:
    return int(time.time() * 1000)


class SandboxState:
    def __init__(
        self,
        public_url: str,
        webhook_url: str | None,
        webhook_secret: str,
        *,
        seed: int | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_attempts: int = 12,
        session_ttl: int = 1800,
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.webhook_url = webhook_url
        self.session_ttl = session_ttl
        self._lock = threading.RLock()
        self._rng = random.Random(seed)  # noqa: S311 - fault injection, reproducible by seed
        self._faults = Faults()
        self.traffic = Traffic()
        self._sessions: dict[str, _Session] = {}
        self._enrolled: dict[str, dict[str, Any]] = {}
        self._deliverer = (
            Deliverer(
                webhook_url,
                webhook_secret,
                self._record_delivery,
                backoff=Backoff(backoff_base, backoff_cap, max_attempts),
            )
            if webhook_url
            else None
        )

    # --- enrolment -------------------------------------------------------------------------------

    def enroll(
        self,
        email: str,
        name: str,
        phone: str | None = None,
        company: str | None = None,
        job_title: str | None = None,
    ) -> dict[str, Any]:
        """Enrol (or re-enrol) an identity; emails are matched trimmed and case-insensitively."""
        if not isinstance(email, str) or "@" not in email.strip():
            raise BadChoice("email must be an email address")
        if not isinstance(name, str) or not name.strip():
            raise BadChoice("name must be a non-empty string")
        for label, value in (("phone", phone), ("company", company), ("jobTitle", job_title)):
            if value is not None and not isinstance(value, str):
                raise BadChoice(f"{label} must be a string or null")
        profile = {
            "name": name.strip(),
            "email": email.strip(),
            "phone": phone,
            "company": company,
            "jobTitle": job_title,
        }
        with self._lock:
            self._enrolled[email.strip().lower()] = profile
        return dict(profile)

    def enrollments(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(p) for p in self._enrolled.values()]

    # --- sessions --------------------------------------------------------------------------------

    def create_session(
        self, flow: list[Any], client_reference_id: Any = None, metadata: Any = None, video_ai: Any = None
    ) -> dict[str, Any]:
        created = _now_ms()
        session = _Session(
            id=f"sess_{secrets.token_hex(12)}",
            client_reference_id=client_reference_id,
            metadata=metadata if metadata is not None else {},
            flow=copy.deepcopy(flow),
            video_ai=video_ai,
            created_at=created,
            expires_at=created + self.session_ttl * 1000,
        )
        with self._lock:
            self._sessions[session.id] = session
            return self._envelope(session)

    def envelope(self, session_id: str) -> dict[str, Any]:
        """`{"session": ..., "clientSecret": ...}` as the vendor's GET /sessions/{id} answers it."""
        with self._lock:
            return self._envelope(self._get(session_id))

    def open_session(self, session_id: str) -> dict[str, Any]:
        """The hosted page was opened: a created session is now in progress."""
        with self._lock:
            session = self._get(session_id)
            if session.status == CREATED:
                self._set_status(session, IN_PROGRESS)
            return self._envelope(session)

    def complete_session(
        self,
        session_id: str,
        identity: Any = None,
        liveness: Any = "live",
        confirm_email: Any = True,
        status: Any = COMPLETE,
    ) -> dict[str, Any]:
        """Finish the session with these choices. Raises SessionNotFound, then SessionFinished, then BadChoice."""
        with self._lock:
            session = self._get(session_id)
            if status not in FINISHED:
                raise BadChoice(f"status must be one of {', '.join(FINISHED)}")
            if session.status in FINISHED:
                raise SessionFinished(f"session {session_id} is already {session.status}")
            report = None
            if status == COMPLETE:
                report = build_report(session.flow, self._choices(identity, liveness, confirm_email))
            session.report = report
            self._set_status(session, status)
            return self._envelope(session)

    def deliveries(self, session_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(d) for d in self._get(session_id).deliveries]

    # --- faults ----------------------------------------------------------------------------------

    def faults(self) -> dict[str, float | None]:
        with self._lock:
            return self._faults.to_json()

    def update_faults(self, changes: Mapping[str, Any]) -> dict[str, float | None]:
        """Apply a partial update (JSON names); `seed` re-seeds the fault random generator. Raises FaultError."""
        with self._lock:
            self._faults = self._faults.updated(changes)
            if "seed" in changes:
                self._rng.seed(changes["seed"])
            return self._faults.to_json()

    def arrive(self) -> float | None:
        """A vendor API request arrived: None when it may be served, else the seconds until it could."""
        with self._lock:
            limit = self._faults.rate_limit_per_minute
        return self.traffic.arrive(limit)

    def count_request(self, session_id: str, kind: str) -> None:
        """One request (`create` or `get`) about a session this sandbox knows."""
        with self._lock:
            known = session_id in self._sessions
        if known:
            self.traffic.count(session_id, kind)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            limit = self._faults.rate_limit_per_minute
        return self.traffic.stats(limit)

    def latency_seconds(self) -> float:
        with self._lock:
            return self._faults.latency_ms / 1000

    def roll(self, knob: str) -> bool:
        """True with the probability set for this knob (JSON name, e.g. "errorRate")."""
        with self._lock:
            rate: float = getattr(self._faults, RATE_KNOBS[knob])
            return rate > 0 and self._rng.random() < rate

    def close(self) -> None:
        """Stop webhook delivery; events not yet delivered are dropped."""
        if self._deliverer is not None:
            self._deliverer.close()

    # --- internals -------------------------------------------------------------------------------

    def _get(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        return session

    def _choices(self, identity: Any, liveness: Any, confirm_email: Any) -> Choices:
        if liveness not in LIVENESS_CHOICES:
            raise BadChoice(f"liveness must be one of {', '.join(LIVENESS_CHOICES)}")
        if not isinstance(confirm_email, bool):
            raise BadChoice("confirmEmail must be true or false")
        if identity in (IDENTITY_UNKNOWN, IDENTITY_NONE):
            return Choices(identity, liveness, confirm_email)
        if not isinstance(identity, str) or not identity.strip():
            raise BadChoice(f'identity must be an enrolled email, "{IDENTITY_UNKNOWN}" or "{IDENTITY_NONE}"')
        profile = self._enrolled.get(identity.strip().lower())
        if profile is None:
            raise BadChoice("identity is not an enrolled email")
        return Choices(identity, liveness, confirm_email, dict(profile))

    def _set_status(self, session: _Session, status: str) -> None:
        session.status = status
        if self._deliverer is None:
            return
        if self.roll("dropRate"):
            dropped = {"eventId": new_event_id(), "attempt": 0, "status": None, "error": "dropped (dropRate)"}
            session.deliveries.append({**dropped, "at": _now_ms()})
            return
        self._deliverer.publish(session.id, copies=2 if self.roll("duplicateRate") else 1)

    def _record_delivery(self, session_id: str, attempt: dict[str, Any]) -> None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None:
                session.deliveries.append(attempt)

    def _envelope(self, session: _Session) -> dict[str, Any]:
        return copy.deepcopy(
            {
                "session": {
                    "id": session.id,
                    "status": session.status,
                    "clientReferenceId": session.client_reference_id,
                    "metadata": session.metadata,
                    "flow": session.flow,
                    "videoAIAnalysisEnabled": session.video_ai,
                    "createdAt": session.created_at,
                    "report": session.report,
                },
                "clientSecret": {"url": f"{self.public_url}/s/{session.id}", "expiresAt": session.expires_at},
            }
        )
