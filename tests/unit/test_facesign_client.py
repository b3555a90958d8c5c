"""The FaceSign API client against canned HTTP answers (`responses`): auth, shapes, bounded retries."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
import requests
import responses

from adapters.facesign.budget import Budget, Caller, budget_for
from adapters.facesign.client import (
    BudgetExhausted,
    FaceSignClient,
    FaceSignNotFound,
    FaceSignRejected,
    FaceSignTransient,
    RetryPolicy,
)
from domain.flow import build_recovery_flow
from tests.conftest import free_port

BASE = "https://api.facesign.test"
SESSIONS = f"{BASE}/sessions"
FAST = RetryPolicy(attempts=3, total_seconds=5.0, backoff_max=0.01, backoff_multiplier=0.001, retry_after_cap=1.0)
ANSWER = {"session": {"id": "sess_1", "status": "created"}, "clientSecret": {"url": "https://x/s/sess_1"}}


def make_client(policy: RetryPolicy = FAST, base: str = BASE, budget: Budget | None = None) -> FaceSignClient:
    return FaceSignClient(base, "test-api-key", timeout=2.0, connect_timeout=1.0, policy=policy, budget=budget)


def create(client: FaceSignClient) -> dict[str, Any]:
    return client.create_session("attempt-1", {"recoveryType": "forgot_password"}, build_recovery_flow())


SESSION = f"{SESSIONS}/sess_1"


def get(client: FaceSignClient) -> dict[str, Any]:
    return client.get_session("sess_1")


@responses.activate
def test_create_session_sends_bearer_auth_and_the_vendor_body_shape() -> None:
    responses.add(responses.POST, SESSIONS, json=ANSWER)
    flow = build_recovery_flow()
    answer = make_client(base=BASE + "/").create_session("attempt-1", {"recoveryType": "forgot_password"}, flow)

    assert answer == ANSWER
    [call] = responses.calls
    assert call.request.url == SESSIONS
    assert call.request.headers["Authorization"] == "Bearer test-api-key"
    assert call.request.headers["Content-Type"] == "application/json"
    body = json.loads(call.request.body)
    assert body == {
        "clientReferenceId": "attempt-1",
        "metadata": {"recoveryType": "forgot_password"},
        "flow": flow,
        "videoAIAnalysisEnabled": True,
    }


@responses.activate
def test_get_session_sends_auth_and_parses_the_answer() -> None:
    full = {"session": {"id": "sess_1", "status": "complete", "report": {"nodeReports": []}}, "clientSecret": {}}
    responses.add(responses.GET, f"{SESSIONS}/sess_1", json=full)
    assert make_client().get_session("sess_1") == full
    [call] = responses.calls
    assert call.request.headers["Authorization"] == "Bearer test-api-key"


@responses.activate
def test_each_get_carries_its_own_url_and_the_same_headers() -> None:
    for session_id in ("sess_1", "sess_2"):
        responses.add(responses.GET, f"{SESSIONS}/{session_id}", json={"session": {"id": session_id}})
    client = make_client(base=BASE + "/")
    assert [client.get_session(s)["session"]["id"] for s in ("sess_1", "sess_2", "sess_1")] == [
        "sess_1",
        "sess_2",
        "sess_1",
    ]
    assert [call.request.url for call in responses.calls] == [
        f"{SESSIONS}/sess_1",
        f"{SESSIONS}/sess_2",
        f"{SESSIONS}/sess_1",
    ]
    for call in responses.calls:
        assert (call.request.headers["Authorization"], call.request.headers["Accept"]) == (
            "Bearer test-api-key",
            "application/json",
        )


@responses.activate
def test_get_session_quotes_the_id_into_one_path_segment() -> None:
    responses.add(responses.GET, f"{SESSIONS}/..%2Fadmin%3Fx%3D1", json=ANSWER)
    assert make_client().get_session("../admin?x=1") == ANSWER
    assert responses.calls[0].request.path_url == "/sessions/..%2Fadmin%3Fx%3D1"


@responses.activate
def test_500_then_200_is_retried_and_succeeds() -> None:
    responses.add(responses.GET, SESSION, status=500)
    responses.add(responses.GET, SESSION, json=ANSWER)
    assert get(make_client()) == ANSWER
    assert len(responses.calls) == 2


@responses.activate
def test_a_429_is_not_retried_and_pauses_every_caller_of_the_budget_for_its_retry_after() -> None:
    responses.add(responses.POST, SESSIONS, status=429, headers={"Retry-After": "7"})
    budget = budget_for(100, 0.3, None)
    receiver, worker = make_client(budget=budget), make_client(budget=budget)
    with pytest.raises(BudgetExhausted) as raised:
        create(receiver)
    assert 6.5 <= raised.value.retry_after <= 7
    with pytest.raises(BudgetExhausted) as waiting:
        worker.get_session("sess_1")  # another caller of the same budget: nothing sent
    assert 6 <= waiting.value.retry_after <= 7
    assert len(responses.calls) == 1


@pytest.mark.parametrize(("retry_after", "low", "high"), [("soon", 0.5, 1.0), ("-5", 0.5, 1.0), ("3600", 59, 60)])
@responses.activate
def test_a_429_without_a_usable_retry_after_pauses_a_second_and_a_huge_one_at_most_a_minute(
    retry_after: str, low: float, high: float
) -> None:
    responses.add(responses.POST, SESSIONS, status=429, headers={"Retry-After": retry_after})
    with pytest.raises(BudgetExhausted) as raised:
        create(make_client())
    assert low <= raised.value.retry_after <= high


@pytest.mark.parametrize("retry_after", ["soon", "Wed, 21 Oct 2015 07:28:00 GMT", "-5"])
@responses.activate
def test_unusable_retry_after_falls_back_to_own_backoff(retry_after: str) -> None:
    responses.add(responses.POST, SESSIONS, status=503, headers={"Retry-After": retry_after})
    responses.add(responses.POST, SESSIONS, json=ANSWER)
    started = time.monotonic()
    assert create(make_client()) == ANSWER
    assert len(responses.calls) == 2
    assert time.monotonic() - started < 2


@responses.activate
def test_retry_after_is_capped_by_the_policy() -> None:
    responses.add(responses.POST, SESSIONS, status=503, headers={"Retry-After": "3600"})
    responses.add(responses.POST, SESSIONS, json=ANSWER)
    policy = RetryPolicy(attempts=3, total_seconds=5.0, backoff_max=0.01, backoff_multiplier=0.001, retry_after_cap=0.2)
    started = time.monotonic()
    assert create(make_client(policy)) == ANSWER
    assert 0.15 <= time.monotonic() - started < 1.5


@responses.activate
def test_every_try_takes_a_token_so_retries_stop_when_the_budget_is_spent() -> None:
    responses.add(responses.GET, f"{SESSIONS}/sess_1", status=503, headers={"Retry-After": "0"})
    client = make_client(budget=budget_for(2, 0, None))
    with pytest.raises(BudgetExhausted) as raised:
        client.get_session("sess_1")
    assert len(responses.calls) == 2  # the first try and one retry; the third had no token
    assert raised.value.retry_after > 0


@responses.activate
def test_worker_fetches_cannot_take_the_interactive_share_and_the_reconciler_only_the_leftover() -> None:
    responses.add(responses.GET, f"{SESSIONS}/sess_1", json=ANSWER)
    responses.add(responses.POST, SESSIONS, json=ANSWER)
    client = make_client(budget=budget_for(10, 0.3, None))
    for _ in range(3):
        client.get_session("sess_1", caller=Caller.RECONCILER)
    with pytest.raises(BudgetExhausted):
        client.get_session("sess_1", caller=Caller.RECONCILER)
    for _ in range(4):
        client.get_session("sess_1")
    with pytest.raises(BudgetExhausted):
        client.get_session("sess_1")
    for _ in range(3):
        create(client)  # the reserve: a person can still start a recovery
    with pytest.raises(BudgetExhausted):
        create(client)
    assert len(responses.calls) == 10


@responses.activate
def test_before_send_runs_with_the_token_in_hand_before_each_request() -> None:
    responses.add(responses.GET, f"{SESSIONS}/sess_1", status=500)
    responses.add(responses.GET, f"{SESSIONS}/sess_1", json=ANSWER)
    seen: list[int] = []
    assert make_client().get_session("sess_1", before_send=lambda: seen.append(len(responses.calls))) == ANSWER
    assert seen == [0, 1]
    empty = make_client(budget=budget_for(1, 0, None))
    empty.get_session("sess_1")
    with pytest.raises(BudgetExhausted):
        empty.get_session("sess_1", before_send=lambda: seen.append(-1))
    assert seen == [0, 1]  # no token, no request, and the caller's marker stays set


@pytest.mark.parametrize(
    "error",
    [
        requests.ConnectionError("refused"),
        requests.ConnectTimeout("slow"),
        requests.ReadTimeout("slow"),
        requests.exceptions.ChunkedEncodingError("body cut short"),
    ],
    ids=["connection", "connect timeout", "read timeout", "body cut short"],
)
@responses.activate
def test_connection_trouble_is_retried(error: Exception) -> None:
    responses.add(responses.GET, SESSION, body=error)
    responses.add(responses.GET, SESSION, json=ANSWER)
    assert get(make_client()) == ANSWER
    assert len(responses.calls) == 2


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, FaceSignNotFound),
        (301, FaceSignRejected),
        (307, FaceSignRejected),
        (400, FaceSignRejected),
        (401, FaceSignRejected),
        (403, FaceSignRejected),
        (422, FaceSignRejected),
    ],
)
@responses.activate
def test_client_errors_are_not_retried(status: int, kind: type[FaceSignRejected]) -> None:
    responses.add(responses.POST, SESSIONS, status=status, json={"error": "nope"})
    responses.add(responses.POST, SESSIONS, json=ANSWER)
    with pytest.raises(kind) as raised:
        create(make_client())
    assert raised.value.status == status
    assert not isinstance(raised.value, FaceSignTransient)
    assert len(responses.calls) == 1


@responses.activate
def test_a_redirect_is_not_followed_so_the_key_goes_nowhere_else() -> None:
    responses.add(responses.GET, f"{SESSIONS}/sess_1", status=302, headers={"Location": "https://elsewhere.test/x"})
    responses.add(responses.GET, "https://elsewhere.test/x", json={"session": {}})
    with pytest.raises(FaceSignRejected):
        make_client().get_session("sess_1")
    assert [call.request.url for call in responses.calls] == [f"{SESSIONS}/sess_1"]


@responses.activate
def test_404_on_get_session_is_not_found_without_retry() -> None:
    responses.add(responses.GET, f"{SESSIONS}/missing", status=404)
    with pytest.raises(FaceSignNotFound):
        make_client().get_session("missing")
    assert len(responses.calls) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@responses.activate
def test_persistent_transient_failure_gives_up_after_the_attempt_bound(status: int) -> None:
    responses.add(responses.GET, SESSION, status=status, headers={"Retry-After": "0"})
    with pytest.raises(FaceSignTransient) as raised:
        get(make_client(RetryPolicy(attempts=3, total_seconds=5.0, backoff_max=0.01, backoff_multiplier=0.001)))
    assert str(status) in str(raised.value)
    assert len(responses.calls) == 3


@responses.activate
def test_persistent_connection_errors_give_up_after_the_attempt_bound() -> None:
    responses.add(responses.GET, SESSION, body=requests.ConnectionError("refused"))
    with pytest.raises(FaceSignTransient):
        get(make_client())
    assert len(responses.calls) == 3


@responses.activate
def test_total_time_bound_stops_a_long_run_of_retries() -> None:
    responses.add(responses.POST, SESSIONS, status=503, headers={"Retry-After": "0.1"})
    policy = RetryPolicy(attempts=100, total_seconds=0.3, backoff_max=0.01, backoff_multiplier=0.001)
    started = time.monotonic()
    with pytest.raises(FaceSignTransient):
        create(make_client(policy))
    assert time.monotonic() - started < 2.0
    assert 2 <= len(responses.calls) <= 6


@responses.activate
def test_total_time_bound_is_not_overrun_by_a_long_retry_after() -> None:
    responses.add(responses.POST, SESSIONS, status=503, headers={"Retry-After": "0.6"})
    policy = RetryPolicy(
        attempts=5, total_seconds=0.05, backoff_max=0.01, backoff_multiplier=0.001, retry_after_cap=10.0
    )
    started = time.monotonic()
    with pytest.raises(FaceSignTransient):
        create(make_client(policy))
    elapsed = time.monotonic() - started
    assert len(responses.calls) == 1
    assert elapsed < 0.5


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("<html>Bad gateway</html>", "text/html"),
        ("", "application/json"),
        ("{truncated", "application/json"),
        ("[1, 2, 3]", "application/json"),
        ('"just a string"', "application/json"),
    ],
    ids=["html", "empty", "truncated", "array", "string"],
)
@responses.activate
def test_answer_that_is_not_a_json_object_is_transient(body: str, content_type: str) -> None:
    responses.add(responses.GET, SESSION, body=body, status=200, content_type=content_type)
    with pytest.raises(FaceSignTransient):
        get(make_client())
    assert len(responses.calls) == FAST.attempts


@responses.activate
def test_non_json_then_good_answer_recovers() -> None:
    responses.add(responses.GET, SESSION, body="oops", status=200, content_type="text/plain")
    responses.add(responses.GET, SESSION, json=ANSWER)
    assert get(make_client()) == ANSWER
    assert len(responses.calls) == 2


# Creating a session: retried only when FaceSign cannot have acted on the request.


@pytest.mark.parametrize(
    ("answer", "kwargs"),
    [
        ("500", {"status": 500}),
        ("502", {"status": 502}),
        ("504", {"status": 504}),
        ("read timeout", {"body": requests.ReadTimeout("slow")}),
        ("reset after sending", {"body": requests.ConnectionError("connection reset by peer")}),
        ("body cut short", {"body": requests.exceptions.ChunkedEncodingError("cut")}),
        ("unreadable 200", {"body": "<html>", "status": 200, "content_type": "text/html"}),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
@responses.activate
def test_a_create_that_may_have_been_processed_is_never_sent_twice(answer: str, kwargs: dict[str, Any]) -> None:
    responses.add(responses.POST, SESSIONS, **kwargs)
    responses.add(responses.POST, SESSIONS, json=ANSWER)
    with pytest.raises(FaceSignTransient):
        create(make_client())
    assert len(responses.calls) == 1


@responses.activate
def test_a_create_refused_as_a_whole_is_retried() -> None:
    """A 503 means the vendor processed nothing; a 429 too, but it pauses the budget instead (above)."""
    responses.add(responses.POST, SESSIONS, status=503, headers={"Retry-After": "0"})
    responses.add(responses.POST, SESSIONS, json=ANSWER)
    assert create(make_client()) == ANSWER
    assert len(responses.calls) == 2


def test_a_create_whose_connection_was_refused_is_retried() -> None:
    """Nothing listens at first: the connection never opens, nothing was sent, so trying again is safe."""
    port = free_port()
    created: list[bytes] = []

    class Vendor(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
            created.append(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps(ANSWER).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    def listen_later() -> None:
        time.sleep(0.3)
        server = HTTPServer(("127.0.0.1", port), Vendor)
        server.handle_request()
        server.server_close()

    threading.Thread(target=listen_later, daemon=True).start()
    policy = RetryPolicy(attempts=8, total_seconds=10.0, backoff_max=0.3, backoff_multiplier=0.2)
    client = FaceSignClient(f"http://127.0.0.1:{port}", "k", timeout=2.0, connect_timeout=1.0, policy=policy)
    assert create(client) == ANSWER
    assert len(created) == 1


@responses.activate
def test_a_create_with_a_budget_gives_up_within_it() -> None:
    responses.add(responses.POST, SESSIONS, status=503, headers={"Retry-After": "0.3"})
    policy = RetryPolicy(attempts=50, total_seconds=30.0, backoff_max=0.01, backoff_multiplier=0.001)
    started = time.monotonic()
    with pytest.raises(FaceSignTransient):
        make_client(policy).create_session("attempt-1", {}, build_recovery_flow(), budget=1.0)
    assert time.monotonic() - started < 1.5
