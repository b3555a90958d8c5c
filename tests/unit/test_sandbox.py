from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from starlette.testclient import TestClient

from domain.flow import build_recovery_flow
from domain.signature import HEADER, verify
from sandbox.app import create_sandbox_app
from sandbox.delivery import Backoff
from sandbox.server import SandboxServer
from sandbox.state import SandboxState
from sandbox.traffic import Traffic

AUTH = {"Authorization": "Bearer test-key"}
SECRET = "whsec_test"
ALICE = {
    "name": "Alice Example",
    "email": "alice@example.com",
    "phone": "+15550100",
    "company": "Acme",
    "jobTitle": "Engineer",
}


@contextmanager
def sandbox(webhook_url: str | None = None, **options: Any) -> Iterator[tuple[SandboxState, TestClient]]:
    state = SandboxState("http://sandbox.test", webhook_url, SECRET, seed=7, backoff_base=0.01, **options)
    state.enroll(ALICE["email"], ALICE["name"], ALICE["phone"], ALICE["company"], ALICE["jobTitle"])
    try:
        yield state, TestClient(create_sandbox_app(state))
    finally:
        state.close()


def create(client: TestClient, flow: list[dict[str, Any]] | None = None) -> str:
    body = {
        "clientReferenceId": "recovery-1",
        "metadata": {"recoveryType": "forgot_password"},
        "flow": flow or build_recovery_flow(),
        "videoAIAnalysisEnabled": True,
    }
    response = client.post("/sessions", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    return str(response.json()["session"]["id"])


def outcomes(session: dict[str, Any]) -> dict[str, str]:
    return {r["nodeId"]: r["outcome"] for r in session["report"]["nodeReports"]}


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@contextmanager
def receiver(statuses: list[int] | None = None) -> Iterator[tuple[str, list[tuple[str | None, bytes]]]]:
    """A webhook endpoint on loopback that answers the given statuses in turn, then 200."""
    script = list(statuses or [])
    received: list[tuple[str | None, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers.get(HEADER), body))
            self.send_response(script.pop(0) if script else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/facesign", received
    finally:
        server.shutdown()
        server.server_close()


# --- the vendor API ------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}])
def test_vendor_api_requires_a_bearer_key(headers: dict[str, str]) -> None:
    with sandbox() as (_, client):
        response = client.post("/sessions", json={"flow": build_recovery_flow()}, headers=headers)
        assert response.status_code == 401
        assert "error" in response.json()
        assert client.get("/sessions/sess_x", headers=headers).status_code == 401


def test_create_and_get_session() -> None:
    with sandbox() as (_, client):
        session_id = create(client)
        answer = client.get(f"/sessions/{session_id}", headers=AUTH).json()
        session, secret = answer["session"], answer["clientSecret"]
        assert session_id.startswith("sess_")
        assert session["status"] == "created"
        assert session["clientReferenceId"] == "recovery-1"
        assert session["metadata"] == {"recoveryType": "forgot_password"}
        assert session["flow"] == build_recovery_flow()
        assert session["report"] is None
        assert secret["url"] == f"http://sandbox.test/s/{session_id}"
        assert secret["expiresAt"] > session["createdAt"] > 1_600_000_000_000
        assert client.get("/sessions/sess_nope", headers=AUTH).status_code == 404


@pytest.mark.parametrize("body", [b"{}", b'{"flow": "x"}', b'{"flow": []}', b"[]", b"not json"])
def test_create_rejects_a_body_without_a_flow_list(body: bytes) -> None:
    with sandbox() as (_, client):
        response = client.post("/sessions", content=body, headers=AUTH)
        assert response.status_code == 400
        assert "error" in response.json()


# --- reports -------------------------------------------------------------------------------------

CASES = [
    (
        "alice@example.com",
        "live",
        True,
        {"recognition": "recognized", "liveness_known": "livenessDetected", "confirm_identity": "identity_confirmed"},
    ),
    (
        "ALICE@example.com ",
        "live",
        False,
        {
            "recognition": "recognized",
            "liveness_known": "livenessDetected",
            "confirm_identity": "identity_not_confirmed",
        },
    ),
    ("alice@example.com", "deepfake", True, {"recognition": "recognized", "liveness_known": "deepfakeDetected"}),
    (
        "unknown",
        "live",
        True,
        {"recognition": "newUser", "liveness_new": "livenessDetected", "not_found": "acknowledged"},
    ),
    ("none", "none", True, {"recognition": "noFace", "liveness_new": "noFace"}),
]


@pytest.mark.parametrize(("identity", "liveness", "confirm", "expected"), CASES)
def test_completion_builds_the_report_from_the_choices(
    identity: str, liveness: str, confirm: bool, expected: dict[str, str]
) -> None:
    with sandbox() as (_, client):
        session_id = create(client)
        body = {"identity": identity, "liveness": liveness, "confirmEmail": confirm}
        answer = client.post(f"/sandbox/sessions/{session_id}/complete", json=body)
        assert answer.status_code == 200, answer.text
        session = client.get(f"/sessions/{session_id}", headers=AUTH).json()["session"]
        assert session["status"] == "complete"
        got = outcomes(session)
        assert {node: got.get(node) for node in expected} == expected
        recognition = next(r for r in session["report"]["nodeReports"] if r["nodeId"] == "recognition")
        assert recognition["report"] == (ALICE if expected["recognition"] == "recognized" else {})
        if expected["recognition"] != "recognized":
            assert "liveness_known" not in got


def test_report_walks_the_sessions_own_flow_by_node_type() -> None:
    flow = [
        {"id": "s", "type": "start", "outcome": "rec"},
        {"id": "rec", "type": "recognition", "outcomes": {"recognized": "lk", "newUser": "e", "noFace": "e"}},
        {
            "id": "lk",
            "type": "liveness_detection",
            "outcomes": {"livenessDetected": "ask", "deepfakeDetected": "ask", "noFace": "ask"},
        },
        {
            "id": "ask",
            "type": "conversation",
            "prompt": "Say: email?",
            "outcomes": [
                {"id": "yes", "targetNodeId": "e", "condition": "gave it"},
                {"id": "no", "targetNodeId": "e", "condition": "did not"},
            ],
        },
        {"id": "e", "type": "end"},
    ]
    with sandbox() as (_, client):
        session_id = create(client, flow)
        body = {"identity": "alice@example.com", "confirmEmail": False}
        session = client.post(f"/sandbox/sessions/{session_id}/complete", json=body).json()["session"]
        assert outcomes(session) == {"rec": "recognized", "lk": "livenessDetected", "ask": "no"}


def test_incomplete_session_has_no_report_and_cannot_finish_twice() -> None:
    with sandbox() as (_, client):
        session_id = create(client)
        answer = client.post(f"/sandbox/sessions/{session_id}/complete", json={"status": "incomplete"})
        assert answer.status_code == 200
        assert answer.json()["session"]["status"] == "incomplete"
        assert answer.json()["session"]["report"] is None
        again = client.post(f"/sandbox/sessions/{session_id}/complete", json={"identity": "unknown"})
        assert again.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"identity": "bob@example.com"},
        {"identity": "unknown", "liveness": "maybe"},
        {"identity": "unknown", "confirmEmail": "yes"},
        {"identity": "unknown", "status": "done"},
        {"identity": "unknown", "confirm_email": False},
        {},
    ],
)
def test_completion_rejects_bad_choices(body: dict[str, Any]) -> None:
    with sandbox() as (_, client):
        session_id = create(client)
        assert client.post(f"/sandbox/sessions/{session_id}/complete", json=body).status_code == 400
        assert client.post("/sandbox/sessions/sess_nope/complete", json={"identity": "unknown"}).status_code == 404


def test_enrollments() -> None:
    with sandbox() as (_, client):
        created = client.post("/sandbox/enrollments", json={"email": "bob@example.com", "name": "Bob"})
        assert created.status_code == 201
        assert created.json() == {
            "name": "Bob",
            "email": "bob@example.com",
            "phone": None,
            "company": None,
            "jobTitle": None,
        }
        assert [p["email"] for p in client.get("/sandbox/enrollments").json()] == [ALICE["email"], "bob@example.com"]
        assert client.post("/sandbox/enrollments", json={"email": "nope", "name": "X"}).status_code == 400


# --- faults --------------------------------------------------------------------------------------


def test_fault_knobs() -> None:
    with sandbox() as (_, client):
        assert client.post("/sandbox/faults", json={"errorRate": 1}).json()["errorRate"] == 1
        assert client.post("/sessions", json={"flow": build_recovery_flow()}, headers=AUTH).status_code == 500
        client.post("/sandbox/faults", json={"errorRate": 0, "rate429": 1})
        limited = client.get("/sessions/sess_x", headers=AUTH)
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "1"
        client.post("/sandbox/faults", json={"rate429": 0, "latencyMs": 50})
        started = time.monotonic()
        assert client.get("/sessions/sess_x", headers=AUTH).status_code == 404
        assert time.monotonic() - started >= 0.05
        assert client.get("/sandbox/faults").json() == {
            "latencyMs": 50,
            "errorRate": 0,
            "rate429": 0,
            "dropRate": 0.0,
            "duplicateRate": 0.0,
            "rateLimitPerMinute": None,
        }
        assert client.post("/sandbox/faults", json={"errorRate": 2}).status_code == 400
        assert client.post("/sandbox/faults", json={"errorrate": 0.5}).status_code == 400


def test_rate_limit_per_minute_answers_429_above_it_and_stats_count_what_was_received() -> None:
    with sandbox() as (_, client):
        assert client.post("/sandbox/faults", json={"rateLimitPerMinute": 3}).json()["rateLimitPerMinute"] == 3
        session_id = create(client)
        answers = [client.get(f"/sessions/{session_id}", headers=AUTH) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert 55 <= int(answers[-1].headers["Retry-After"]) <= 60
        assert client.post("/sessions", json={"flow": build_recovery_flow()}, headers=AUTH).status_code == 429
        stats = client.get("/sandbox/stats").json()
        assert stats == {
            "requests": 5,
            "rateLimited": 2,
            "maxRequestsIn60s": 5,
            "rateLimitPerMinute": 3,
            "sessions": {session_id: {"create": 1, "get": 3}},
        }
        assert client.post("/sandbox/faults", json={"rateLimitPerMinute": None}).status_code == 200
        assert client.get(f"/sessions/{session_id}", headers=AUTH).status_code == 200


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "600"])
def test_rate_limit_per_minute_must_be_a_positive_whole_number(value: Any) -> None:
    with sandbox() as (_, client):
        answer = client.post("/sandbox/faults", json={"rateLimitPerMinute": value})
        assert answer.status_code == 400 and "rateLimitPerMinute" in answer.json()["error"]


def test_the_largest_window_and_the_limit_slide_with_time() -> None:
    now = [0.0]
    traffic = Traffic(clock=lambda: now[0])
    for at in (0, 10, 20, 59.5):
        now[0] = at
        assert traffic.arrive(limit=4) is None
    now[0] = 65.0  # the request at 0 left the window; 10, 20 and 59.5 remain
    assert traffic.arrive(limit=4) is None
    assert traffic.arrive(limit=4) == pytest.approx(10 + 60 - 65)  # full until the request at 10 leaves
    now[0] = 200.0
    assert traffic.arrive(limit=4) is None
    assert traffic.stats(4)["maxRequestsIn60s"] == 5  # 10, 20, 59.5, 65 and the refused one at 65


def test_backoff_is_capped_and_jittered() -> None:
    backoff, rng = Backoff(), random.Random(1)
    delays = [backoff.delay(n, rng) for n in range(1, 12)]
    assert 0.25 <= delays[0] <= 0.5
    assert all(15 <= d <= 30 for d in delays[7:])


# --- the hosted page -----------------------------------------------------------------------------


def test_hosted_page_lists_identities_and_finishes() -> None:
    with sandbox() as (state, client):
        state.enroll("eve@example.com", "<Eve>")
        session_id = create(client)
        page = client.get(f"/s/{session_id}")
        assert page.status_code == 200
        assert "x-frame-options" not in page.headers
        for text in (
            "Alice Example",
            "alice@example.com",
            "&lt;Eve&gt;",
            'id="identity"',
            'id="liveness"',
            'id="confirm_email"',
            'id="finish"',
            'id="cancel"',
            f'action="/s/{session_id}/finish"',
        ):
            assert text in page.text
        assert "<Eve>" not in page.text
        assert state.envelope(session_id)["session"]["status"] == "inProgress"
        done = client.post(f"/s/{session_id}/finish", data={"identity": "alice@example.com", "liveness": "live"})
        assert done.status_code == 200
        assert "Verification finished, you can return to the app" in done.text
        session = state.envelope(session_id)["session"]
        assert outcomes(session)["confirm_identity"] == "identity_not_confirmed"  # checkbox left unticked
        assert client.post(f"/s/{session_id}/finish", data={"identity": "unknown"}).status_code == 409


def test_hosted_page_cancel_and_unknown_session() -> None:
    with sandbox() as (state, client):
        session_id = create(client)
        assert client.post(f"/s/{session_id}/cancel").status_code == 200
        assert state.envelope(session_id)["session"]["status"] == "incomplete"
        assert client.get("/s/sess_nope").status_code == 404


# --- webhooks ------------------------------------------------------------------------------------


def test_status_changes_are_delivered_signed_and_retried_until_2xx() -> None:
    with receiver([500]) as (url, received), sandbox(url) as (state, client):
        session_id = create(client)
        client.get(f"/s/{session_id}")  # created -> inProgress
        wait_for(lambda: len(received) == 2)  # the first answer was 500, so it came again
        client.post(f"/sandbox/sessions/{session_id}/complete", json={"identity": "unknown"})
        wait_for(lambda: len(received) == 3)
        events = []
        for header, body in received:
            assert verify(header, body, [SECRET], time.time(), 300).ok
            events.append(json.loads(body))
        assert events[0] == events[1]
        assert events[0]["id"] != events[2]["id"]
        assert {e["type"] for e in events} == {"session.status"}
        assert {e["sessionId"] for e in events} == {session_id}
        attempts = client.get(f"/sandbox/sessions/{session_id}/deliveries").json()
        first = [(a["attempt"], a["status"]) for a in attempts if a["eventId"] == events[0]["id"]]
        assert first == [(1, 500), (2, 200)]
        assert client.get("/sandbox/sessions/sess_nope/deliveries").status_code == 404


def test_dropped_and_duplicated_deliveries() -> None:
    with receiver() as (url, received), sandbox(url) as (state, client):
        client.post("/sandbox/faults", json={"dropRate": 1})
        dropped = create(client)
        client.get(f"/s/{dropped}")
        assert [a["attempt"] for a in state.deliveries(dropped)] == [0]
        client.post("/sandbox/faults", json={"dropRate": 0, "duplicateRate": 1})
        client.post(f"/sandbox/sessions/{dropped}/complete", json={"identity": "none"})
        wait_for(lambda: len(received) == 2)
        assert json.loads(received[0][1])["id"] == json.loads(received[1][1])["id"]


def test_no_webhook_url_means_no_deliveries() -> None:
    with sandbox() as (state, client):
        session_id = create(client)
        client.post(f"/sandbox/sessions/{session_id}/complete", json={"identity": "unknown"})
        assert state.deliveries(session_id) == []


def test_server_in_a_thread_picks_a_free_port() -> None:
    with receiver() as (url, received), SandboxServer("127.0.0.1", 0, url, SECRET) as server:
        assert server.port != 0
        assert server.state.public_url == server.url == f"http://127.0.0.1:{server.port}"
        created = requests.post(f"{server.url}/sessions", json={"flow": build_recovery_flow()}, headers=AUTH, timeout=5)
        assert created.json()["clientSecret"]["url"].startswith(server.url + "/s/")
        assert requests.get(created.json()["clientSecret"]["url"], timeout=5).status_code == 200
        wait_for(lambda: len(received) == 1)
