"""`POST /recoveries` and `GET /recoveries/{id}` against the real app with a fake FaceSign."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
from starlette.testclient import TestClient

from adapters.db.attempts import create_attempt, hold_event_time
from adapters.db.engine import Database
from adapters.db.models import RecoveryAttempt
from adapters.facesign.budget import budget_for
from adapters.facesign.client import (
    FaceSignClient,
    FaceSignError,
    FaceSignNotFound,
    FaceSignRejected,
    FaceSignTransient,
)
from config import Settings
from receiver.app import create_app
from receiver.services import Services
from tests.conftest import app_database_url
from tests.fakes import make_services

URL_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{22,64}$")


class FakeFaceSign:
    """Answers like `POST /sessions`, with a new session id each time; `error` makes every call fail."""

    def __init__(self, error: FaceSignError | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = []

    def create_session(
        self, client_reference_id: str, metadata: Any, flow: list[dict[str, Any]], **_: Any
    ) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        self.calls.append((client_reference_id, dict(metadata), flow))
        session_id = f"sess_{len(self.calls)}"
        return {
            "session": {"id": session_id, "status": "created"},
            "clientSecret": {"url": f"https://x/s/{session_id}", "secret": "cs_test"},
        }


def make_app(
    tmp_path: Path, facesign: FakeFaceSign | None = None, per_minute: int = 100, **client_options: Any
) -> tuple[TestClient, FakeFaceSign, Services]:
    settings = Settings(
        database_url=app_database_url(tmp_path),
        webhook_secrets=("s1", "s2"),
        webhook_max_bytes=1024,
        recoveries_per_minute=per_minute,
    )
    facesign = FakeFaceSign() if facesign is None else facesign
    services = make_services(settings, facesign=facesign)
    return TestClient(create_app(services), raise_server_exceptions=False, **client_options), facesign, services


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    return parsed


# POST /recoveries


@pytest.mark.parametrize(
    "request_options",
    [
        {},
        {"content": b""},
        {"content": b"  \n"},
        {"json": {"type": "forgot_password"}},
        {"json": {}},
    ],
    ids=["no body", "empty body", "blank body", "forgot_password", "empty object"],
)
def test_start_a_recovery(tmp_path: Path, request_options: dict[str, Any]) -> None:
    client, facesign, services = make_app(tmp_path)
    before = datetime.now(UTC)
    response = client.post("/recoveries", **request_options)
    after = datetime.now(UTC)

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "url", "expiresAt"}
    assert URL_SAFE_ID.match(body["id"]), body["id"]
    assert body["url"] == "https://x/s/sess_1"
    ttl = timedelta(seconds=services.settings.attempt_ttl)
    assert before + ttl - timedelta(seconds=1) <= parse_time(body["expiresAt"]) <= after + ttl + timedelta(seconds=1)

    [(reference, metadata, flow)] = facesign.calls
    assert reference == body["id"]
    assert metadata["recoveryType"] == "forgot_password"
    assert flow == services.deps.flow


def test_attempt_is_stored_pending_with_its_session(tmp_path: Path) -> None:
    client, _, services = make_app(tmp_path)
    attempt_id = client.post("/recoveries").json()["id"]
    with services.deps.db.reading() as session:
        attempt = session.get(RecoveryAttempt, attempt_id)
        assert attempt is not None
        assert (attempt.status, attempt.session_id, attempt.client_reference_id) == ("pending", "sess_1", attempt_id)
        assert attempt.session_url == "https://x/s/sess_1"


def test_ids_are_random_and_never_repeat(tmp_path: Path) -> None:
    client, facesign, _ = make_app(tmp_path)
    ids = [client.post("/recoveries").json()["id"] for _ in range(20)]
    assert len(set(ids)) == 20
    assert all(URL_SAFE_ID.match(value) for value in ids)
    assert ids != sorted(ids)  # vanishingly unlikely for random ids; certain for a counter
    assert len(facesign.calls) == 20


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'"forgot_password"',
        b"42",
        b"null",
        b'{"type": "unknown"}',
        b'{"type": "FORGOT_PASSWORD"}',
        b'{"type": 5}',
        b'{"type": null}',
        b'{"type": ["forgot_password"]}',
    ],
    ids=[
        "bad json",
        "bad utf-8",
        "array",
        "string",
        "number",
        "null",
        "unknown type",
        "wrong case",
        "numeric type",
        "null type",
        "list type",
    ],
)
def test_bad_request_is_400_and_creates_no_session(tmp_path: Path, body: bytes) -> None:
    client, facesign, services = make_app(tmp_path)
    response = client.post("/recoveries", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "error" in response.json()
    assert facesign.calls == []
    with services.deps.db.reading() as session:
        assert session.query(RecoveryAttempt).count() == 0


def test_oversized_body_is_413(tmp_path: Path) -> None:
    client, facesign, _ = make_app(tmp_path)
    body = b'{"type": "forgot_password", "pad": "' + b"x" * 5000 + b'"}'
    headers = {"Content-Type": "application/json"}
    assert client.post("/recoveries", content=body, headers=headers).status_code == 413
    assert facesign.calls == []


@pytest.mark.parametrize(
    "error",
    [
        FaceSignTransient("HTTP 503 on POST /sessions"),
        FaceSignTransient("HTTP 429 on POST /sessions", retry_after=3),
        FaceSignRejected("HTTP 400 on POST /sessions", 400),
        FaceSignNotFound("HTTP 404 on POST /sessions", 404),
    ],
    ids=["transient", "rate-limited", "rejected", "not found"],
)
def test_vendor_failure_is_503_and_leaves_nothing_pending(tmp_path: Path, error: FaceSignError) -> None:
    client, _, services = make_app(tmp_path, facesign=FakeFaceSign(error=error))
    response = client.post("/recoveries", json={"type": "forgot_password"})
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    assert "error" in response.json()
    assert "HTTP" not in response.text  # the vendor's details stay in the log
    with services.deps.db.reading() as session:
        [attempt] = session.query(RecoveryAttempt).all()  # written before the vendor call, closed after it failed
        assert (attempt.status, attempt.session_id) == ("failed", None)
    assert client.get(f"/recoveries/{attempt.id}").status_code == 404  # nobody was handed its id


def test_database_outage_is_503_before_any_vendor_call(tmp_path: Path) -> None:
    client, facesign, services = make_app(tmp_path)
    services.deps.db.dispose()
    services.deps.db = Database.connect(f"sqlite:///{tmp_path}")  # a directory: sqlite cannot open it
    response = client.post("/recoveries", json={"type": "forgot_password"})
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    assert facesign.calls == []  # no vendor session for an attempt that could not be written
    assert client.get("/recoveries/some-attempt-id-0123456789").status_code == 503


def test_an_answer_without_a_session_is_503_and_leaves_nothing_pending(tmp_path: Path) -> None:
    class Broken(FakeFaceSign):
        def create_session(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return {"session": {}, "clientSecret": None}

    client, _, services = make_app(tmp_path, facesign=Broken())
    assert client.post("/recoveries").status_code == 503
    with services.deps.db.reading() as session:
        assert session.query(RecoveryAttempt).filter(RecoveryAttempt.status == "pending").count() == 0


# GET /recoveries/{id}


def test_status_of_a_new_attempt_is_pending_and_nothing_else(tmp_path: Path) -> None:
    client, _, _ = make_app(tmp_path)
    attempt_id = client.post("/recoveries").json()["id"]
    response = client.get(f"/recoveries/{attempt_id}")
    assert response.status_code == 200
    assert response.json() == {"id": attempt_id, "status": "pending"}


@pytest.mark.parametrize("attempt_id", ["nope", "sess_1", "A" * 32, "A" * 200, "%00", "..%2F..%2Fetc"])
def test_unknown_id_is_404(tmp_path: Path, attempt_id: str) -> None:
    client, _, _ = make_app(tmp_path)
    client.post("/recoveries")
    response = client.get(f"/recoveries/{attempt_id}")
    assert response.status_code == 404


def test_session_id_is_not_an_attempt_id(tmp_path: Path) -> None:
    client, _, _ = make_app(tmp_path)
    client.post("/recoveries")
    assert client.get("/recoveries/sess_1").status_code == 404


@pytest.mark.parametrize("stored", ["approved", "denied", "expired"])
def test_decided_status_is_reported_without_a_reason(tmp_path: Path, stored: str) -> None:
    client, _, services = make_app(tmp_path)
    attempt_id = client.post("/recoveries").json()["id"]
    with services.deps.db.transaction() as session:
        attempt = session.get(RecoveryAttempt, attempt_id)
        assert attempt is not None
        attempt.status = stored
        attempt.decided_at = datetime.now(UTC)
    response = client.get(f"/recoveries/{attempt_id}")
    assert response.status_code == 200
    assert response.json() == {"id": attempt_id, "status": stored}


def test_pending_attempt_past_its_ttl_reads_expired(tmp_path: Path) -> None:
    client, _, services = make_app(tmp_path)
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    with services.deps.db.transaction() as session:
        create_attempt(
            session,
            "old-attempt-0123456789abcdef",
            "sess_old",
            services.deps.flow,
            "https://x/s/sess_old",
            long_ago,
        )
    response = client.get("/recoveries/old-attempt-0123456789abcdef")
    assert response.status_code == 200
    assert response.json() == {"id": "old-attempt-0123456789abcdef", "status": "expired"}


def test_a_pending_attempt_just_past_its_deadline_still_reads_pending(tmp_path: Path) -> None:
    """Whoever finished in time may be waiting on our delays: not told `expired` a moment after the deadline."""
    client, _, services = make_app(tmp_path)
    just_past = datetime.now(UTC) - timedelta(seconds=services.settings.attempt_ttl + 20)
    with services.deps.db.transaction() as session:
        create_attempt(session, "late-attempt-0123456789abcdef", "sess_l", services.deps.flow, "https://x", just_past)
    assert client.get("/recoveries/late-attempt-0123456789abcdef").json()["status"] == "pending"


def test_a_pending_attempt_with_an_in_time_event_on_record_reads_pending(tmp_path: Path) -> None:
    client, _, services = make_app(tmp_path)
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    with services.deps.db.transaction() as session:
        create_attempt(session, "held-attempt-0123456789abcdef", "sess_h", services.deps.flow, "https://x", long_ago)
        hold_event_time(session, "sess_h", long_ago + timedelta(seconds=5))
    assert client.get("/recoveries/held-attempt-0123456789abcdef").json()["status"] == "pending"


# Rate limit per client address


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    client, facesign, _ = make_app(tmp_path, per_minute=2)
    assert [client.post("/recoveries").status_code for _ in range(2)] == [201, 201]
    response = client.post("/recoveries")
    assert response.status_code == 429
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit()
    assert 1 <= int(retry_after) <= 61
    assert "error" in response.json()
    assert len(facesign.calls) == 2
    assert client.post("/recoveries").status_code == 429


def test_rate_limit_is_per_client_address(tmp_path: Path) -> None:
    first, facesign, services = make_app(tmp_path, per_minute=2, client=("203.0.113.1", 40000))
    app = first.app
    second = TestClient(app, raise_server_exceptions=False, client=("203.0.113.2", 40000))
    assert [first.post("/recoveries").status_code for _ in range(3)] == [201, 201, 429]
    assert second.post("/recoveries").status_code == 201
    assert len(facesign.calls) == 3


def test_status_polling_is_not_rate_limited(tmp_path: Path) -> None:
    client, _, _ = make_app(tmp_path, per_minute=2)
    attempt_id = client.post("/recoveries").json()["id"]
    assert {client.get(f"/recoveries/{attempt_id}").status_code for _ in range(10)} == {200}


@responses.activate
def test_a_person_has_the_reserved_share_and_then_503_with_retry_after_at_once(tmp_path: Path) -> None:
    """Worker fetches have spent all they may of a 10-a-minute budget: the 3 reserved for people remain,
    then `POST /recoveries` answers 503 with Retry-After without waiting and without calling FaceSign."""
    created = iter(range(100))

    def new_session(request: Any) -> tuple[int, dict[str, str], str]:
        session_id = f"sess_new_{next(created)}"
        return 200, {}, json.dumps({"session": {"id": session_id}, "clientSecret": {"url": f"https://x/{session_id}"}})

    responses.add_callback(responses.POST, "https://api.facesign.test/sessions", callback=new_session)
    responses.add(responses.GET, "https://api.facesign.test/sessions/sess_1", json=ANSWER)
    client_of_facesign = FaceSignClient("https://api.facesign.test", "key", budget=budget_for(10, 0.3, None))
    for _ in range(7):
        client_of_facesign.get_session("sess_1")
    client, _, _ = make_app(tmp_path, facesign=client_of_facesign)  # type: ignore[arg-type]
    assert [client.post("/recoveries").status_code for _ in range(3)] == [201, 201, 201]
    started = time.monotonic()
    refused = client.post("/recoveries")
    assert time.monotonic() - started < 1
    assert refused.status_code == 503 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "error" in refused.json()
    assert len(responses.calls) == 10


ANSWER = {"session": {"id": "sess_1", "status": "created"}, "clientSecret": {"url": "https://x/s/sess_1"}}
