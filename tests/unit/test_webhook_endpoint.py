"""`POST /webhooks/facesign`: every step of the webhook contract, in order, against the real app with fake ports."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from adapters.queue.broker import EnqueueError, SessionEvents, build_broker
from adapters.queue.names import PROCESS_ACTOR, SESSIONS_QUEUE
from config import Settings
from domain.signature import HEADER, LEGACY_HEADER, compute, sign
from receiver.app import create_app
from tests.conftest import app_database_url
from tests.fakes import make_services

URL = "/webhooks/facesign"
SECRETS = ("s1", "s2")
MAX_BYTES = 1024
RECEIVED = {"received": True}


class FakeEvents:
    """Records what the receiver enqueues; `fail=True` plays a broker that will not take the message."""

    broker = None

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, str | None]] = []
        self.event_times: list[int | None] = []

    def enqueue(self, session_id: str, event_id: str | None, event_at: int | None = None) -> str:
        if self.fail:
            raise EnqueueError("broker down")
        self.calls.append((session_id, event_id))
        self.event_times.append(event_at)
        return f"msg-{len(self.calls)}"

    async def enqueue_async(self, session_id: str, event_id: str | None, event_at: int | None = None) -> str:
        return self.enqueue(session_id, event_id, event_at)

    def ping(self) -> None:
        return None


class UnusedFaceSign:
    def create_session(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("the webhook endpoint must not call FaceSign")


def make_app(tmp_path: Path, events: Any = None, **overrides: Any) -> tuple[TestClient, Any]:
    options = {"database_url": app_database_url(tmp_path), "webhook_secrets": SECRETS, "webhook_max_bytes": MAX_BYTES}
    events = FakeEvents() if events is None else events
    services = make_services(Settings(**{**options, **overrides}), facesign=UnusedFaceSign(), events=events)
    client = TestClient(create_app(services), raise_server_exceptions=False, client=("127.0.0.1", 50000))
    return client, events


def event(type_: str = "session.status", session_id: Any = "sess_1", event_id: str = "evt_1") -> bytes:
    return json.dumps({"id": event_id, "type": type_, "createdAt": 1_700_000_000_000, "sessionId": session_id}).encode()


def signed(body: bytes, secret: str = SECRETS[0], at: int | None = None, header: str = HEADER) -> dict[str, str]:
    return {header: sign(secret, int(time.time()) if at is None else at, body), "Content-Type": "application/json"}


def post(client: TestClient, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post(URL, content=body, headers=headers or {})


# 1. Body over WEBHOOK_MAX_BYTES -> 413


def padded(size: int) -> bytes:
    """A valid session.status event padded with whitespace to exactly `size` bytes."""
    body = event()
    return body + b" " * (size - len(body))


def test_body_over_the_limit_with_content_length_is_413(tmp_path: Path) -> None:
    client, events = make_app(tmp_path)
    body = padded(MAX_BYTES + 1)
    response = post(client, body, signed(body))
    assert response.status_code == 413
    assert events.calls == []


def test_body_at_the_limit_is_accepted(tmp_path: Path) -> None:
    client, events = make_app(tmp_path)
    body = padded(MAX_BYTES)
    response = post(client, body, signed(body))
    assert response.status_code == 200
    assert events.calls == [("sess_1", "evt_1")]


def chunks(body: bytes, size: int = 100) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize(("size", "status"), [(MAX_BYTES + 1, 413), (MAX_BYTES * 10, 413), (MAX_BYTES, 200)])
def test_streamed_body_without_content_length_is_measured_as_it_arrives(tmp_path: Path, size: int, status: int) -> None:
    client, events = make_app(tmp_path)
    body = padded(size)
    headers = signed(body)
    response = client.post(URL, content=chunks(body), headers=headers)
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == status
    assert events.calls == ([("sess_1", "evt_1")] if status == 200 else [])


# 2. Signature -> 401 with the fixed body "Invalid signature"


def _now() -> int:
    return int(time.time())


BAD_SIGNATURES: list[tuple[str, Any]] = [
    ("missing", lambda body: {}),
    ("empty", lambda body: {HEADER: ""}),
    ("garbage", lambda body: {HEADER: "not a signature"}),
    ("no v1", lambda body: {HEADER: f"t={_now()}"}),
    ("no t", lambda body: {HEADER: f"v1={compute('s1', _now(), body)}"}),
    ("non-numeric t", lambda body: {HEADER: f"t=soon,v1={compute('s1', _now(), body)}"}),
    ("negative t", lambda body: {HEADER: f"t=-{_now()},v1={compute('s1', _now(), body)}"}),
    ("two t", lambda body: {HEADER: f"t={_now()},t={_now()},v1={compute('s1', _now(), body)}"}),
    ("entry without =", lambda body: {HEADER: f"t={_now()},v1{compute('s1', _now(), body)}"}),
    ("over-long header", lambda body: {HEADER: f"t={_now()}," + ",".join(["v1=" + "0" * 64] * 80)}),
    ("wrong secret", lambda body: signed(body, secret="s3")),
    ("secret prefix", lambda body: signed(body, secret="s")),
    ("other body", lambda body: signed(body + b" ")),
    ("other timestamp", lambda body: {HEADER: f"t={_now()},v1={compute('s1', _now() - 1000, body)}"}),
    ("truncated hmac", lambda body: {HEADER: signed(body)[HEADER][:-1]}),
    ("uppercase key", lambda body: {HEADER: signed(body)[HEADER].replace("v1=", "V1=")}),
    ("stale past", lambda body: signed(body, at=_now() - 301)),
    ("stale future", lambda body: signed(body, at=_now() + 301)),
    ("epoch zero", lambda body: signed(body, at=0)),
    ("legacy header with wrong secret", lambda body: signed(body, secret="nope", header=LEGACY_HEADER)),
]


@pytest.mark.parametrize("headers", [row[1] for row in BAD_SIGNATURES], ids=[row[0] for row in BAD_SIGNATURES])
def test_bad_signatures_get_401_with_a_fixed_body_and_nothing_enqueued(tmp_path: Path, headers: Any) -> None:
    client, events = make_app(tmp_path)
    body = event()
    response = post(client, body, headers(body))
    assert response.status_code == 401
    assert response.text == "Invalid signature"
    assert events.calls == []


GOOD_SIGNATURES: list[tuple[str, Any]] = [
    ("first secret", lambda body: signed(body, secret="s1")),
    ("second secret (rotation)", lambda body: signed(body, secret="s2")),
    ("legacy header name", lambda body: signed(body, header=LEGACY_HEADER)),
    ("lower-case header name", lambda body: {HEADER.lower(): signed(body)[HEADER]}),
    ("just inside past tolerance", lambda body: signed(body, at=_now() - 295)),
    ("just inside future tolerance", lambda body: signed(body, at=_now() + 295)),
    ("good v1 after a bad one", lambda body: {HEADER: f"t={_now()},v1={'0' * 64},v1={compute('s1', _now(), body)}"}),
    ("good v1 before a bad one", lambda body: {HEADER: f"t={_now()},v1={compute('s2', _now(), body)},v1=beef"}),
    ("v1 before t, with spaces", lambda body: {HEADER: f"v1={compute('s1', _now(), body)}, t={_now()}"}),
    ("unknown scheme ignored", lambda body: {HEADER: f"t={_now()},v0=abc,v1={compute('s1', _now(), body)}"}),
]


@pytest.mark.parametrize("headers", [row[1] for row in GOOD_SIGNATURES], ids=[row[0] for row in GOOD_SIGNATURES])
def test_good_signatures_are_accepted(tmp_path: Path, headers: Any) -> None:
    client, events = make_app(tmp_path)
    body = event()
    response = post(client, body, headers(body))
    assert response.status_code == 200, response.text
    assert response.json() == RECEIVED
    assert events.calls == [("sess_1", "evt_1")]


def test_several_v1_entries_all_wrong_is_401(tmp_path: Path) -> None:
    client, events = make_app(tmp_path)
    body = event()
    wrong = [compute(secret, _now(), body) for secret in ("x1", "x2", "x3")]
    header = f"t={_now()}," + ",".join(f"v1={value}" for value in wrong)
    response = post(client, body, {HEADER: header})
    assert (response.status_code, response.text) == (401, "Invalid signature")
    assert events.calls == []


def test_tolerance_comes_from_settings(tmp_path: Path) -> None:
    client, events = make_app(tmp_path, webhook_tolerance=10)
    body = event()
    assert post(client, body, signed(body, at=_now() - 60)).status_code == 401
    assert post(client, body, signed(body, at=_now() - 2)).status_code == 200
    assert len(events.calls) == 1


def test_absurdly_large_timestamp_is_401_not_a_crash(tmp_path: Path) -> None:
    client, events = make_app(tmp_path)
    body = event()
    response = post(client, body, {HEADER: "t=" + "9" * 400 + ",v1=" + "0" * 64})
    assert (response.status_code, response.text) == (401, "Invalid signature")
    assert events.calls == []


# 3. Not a JSON object, or no string type -> 400


BAD_SHAPES = [
    ("not json", b"hello"),
    ("truncated json", b'{"type": "session.status"'),
    ("empty body", b""),
    ("invalid utf-8", b'{"type": "\xff\xfe"}'),
    ("json array", b'[{"type": "session.status", "sessionId": "sess_1"}]'),
    ("json string", b'"session.status"'),
    ("json number", b"42"),
    ("json null", b"null"),
    ("missing type", b'{"id": "evt_1", "sessionId": "sess_1"}'),
    ("null type", b'{"type": null, "sessionId": "sess_1"}'),
    ("numeric type", b'{"type": 1, "sessionId": "sess_1"}'),
    ("list type", b'{"type": ["session.status"], "sessionId": "sess_1"}'),
    ("object type", b'{"type": {"name": "session.status"}, "sessionId": "sess_1"}'),
    # Strict JSON (RFC 8259) only: what a lenient parser would take is refused as a whole.
    ("lone surrogate in the id", b'{"id": "evt_\\udfff", "type": "session.status", "sessionId": "sess_1"}'),
    ("lone surrogate elsewhere", b'{"type": "session.status", "sessionId": "sess_1", "note": "\\ud800"}'),
    ("NaN", b'{"type": "session.status", "sessionId": "sess_1", "createdAt": NaN}'),
    ("UTF-8 byte order mark", b'\xef\xbb\xbf{"type": "session.status", "sessionId": "sess_1"}'),
    ("UTF-16", '{"type": "session.status", "sessionId": "sess_1"}'.encode("utf-16")),
    ("Infinity", b'{"type": "session.status", "sessionId": "sess_1", "createdAt": -Infinity}'),
    ("a number past a double", b'{"type": "session.status", "sessionId": "sess_1", "createdAt": 1e400}'),
]


@pytest.mark.parametrize("body", [row[1] for row in BAD_SHAPES], ids=[row[0] for row in BAD_SHAPES])
def test_signed_body_that_is_not_an_event_is_400(tmp_path: Path, body: bytes) -> None:
    client, events = make_app(tmp_path)
    response = post(client, body, signed(body))
    assert response.status_code == 400
    assert "error" in response.json()
    assert events.calls == []


def test_deeply_nested_signed_json_is_400_not_a_crash(tmp_path: Path) -> None:
    client, events = make_app(tmp_path, webhook_max_bytes=262144)  # the default limit
    body = b"[" * 5000 + b"]" * 5000
    response = client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 400
    assert events.calls == []


# 4. Other types -> 200 {"received": true}, nothing enqueued


@pytest.mark.parametrize(
    "type_",
    [
        "media.user_photo",
        "media.document_photo",
        "analysis.video",
        "session.created",
        "Session.Status",
        "session.status ",
    ],
)
def test_other_event_types_are_acknowledged_and_ignored(tmp_path: Path, type_: str) -> None:
    client, events = make_app(tmp_path)
    body = event(type_=type_)
    response = post(client, body, signed(body))
    assert response.status_code == 200
    assert response.json() == RECEIVED
    assert events.calls == []


def test_other_types_need_no_session_id(tmp_path: Path) -> None:
    client, events = make_app(tmp_path)
    body = b'{"id": "evt_9", "type": "media.user_photo"}'
    response = post(client, body, signed(body))
    assert (response.status_code, response.json()) == (200, RECEIVED)
    assert events.calls == []


# 5. session.status without a non-empty string sessionId -> 400


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "evt_1", "type": "session.status"}',
        b'{"id": "evt_1", "type": "session.status", "sessionId": ""}',
        b'{"id": "evt_1", "type": "session.status", "sessionId": null}',
        b'{"id": "evt_1", "type": "session.status", "sessionId": 12345}',
        b'{"id": "evt_1", "type": "session.status", "sessionId": ["sess_1"]}',
        b'{"id": "evt_1", "type": "session.status", "sessionId": {"id": "sess_1"}}',
        b'{"id": "evt_1", "type": "session.status", "sessionId": true}',
        b'{"id": "evt_1", "type": "session.status", "sessionId": "sess_\\ud800"}',
    ],
    ids=["missing", "empty", "null", "number", "list", "object", "bool", "lone surrogate"],
)
def test_session_status_without_a_session_id_is_400(tmp_path: Path, body: bytes) -> None:
    client, events = make_app(tmp_path)
    response = post(client, body, signed(body))
    assert response.status_code == 400
    assert "error" in response.json()
    assert events.calls == []


@pytest.mark.parametrize("event_id", ["", 42, None, ["evt_1"]], ids=["empty", "number", "null", "list"])
def test_an_id_that_is_not_usable_text_is_no_event_id(tmp_path: Path, event_id: object) -> None:
    """Enqueued without an event id (so without a duplicate check), rather than refused."""
    client, events = make_app(tmp_path)
    body = json.dumps({"id": event_id, "type": "session.status", "sessionId": "sess_1"}).encode()
    response = post(client, body, signed(body))
    assert response.status_code == 200
    assert events.calls == [("sess_1", None)]


# 6. Enqueue, then 200; 503 when the broker will not take it


def test_valid_event_is_enqueued_once_with_session_and_event_id(tmp_path: Path) -> None:
    client, events = make_app(tmp_path)
    body = event(session_id="sess_abc", event_id="evt_42")
    response = post(client, body, signed(body))
    assert response.status_code == 200
    assert response.json() == RECEIVED
    assert events.calls == [("sess_abc", "evt_42")]


@pytest.mark.parametrize(
    ("created_at", "expected"),
    [
        (1_700_000_000_000, 1_700_000_000_000),
        (1_800_000_000_999, 1_800_000_000_999),  # in the second the signature names
        (1_800_000_001_000, 1_800_000_000_000),  # later than the signature: the signature's time
        ("1700000000000", 1_800_000_000_000),
        (True, 1_800_000_000_000),
        (-5, 1_800_000_000_000),
        (None, 1_800_000_000_000),
    ],
)
def test_the_event_time_enqueued_is_the_signed_created_at_or_else_the_signature_time(
    tmp_path: Path, created_at: Any, expected: int
) -> None:
    """The time the expiry rule judges the finish by: FaceSign's `createdAt`, never later than its signature."""
    client, events = make_app(tmp_path, webhook_tolerance=10**9)
    body = json.dumps({"id": "evt_1", "type": "session.status", "createdAt": created_at, "sessionId": "s"}).encode()
    response = post(client, body, signed(body, at=1_800_000_000))
    assert response.status_code == 200
    assert events.event_times == [expected]


def test_enqueue_failure_is_503_so_the_vendor_delivers_again(tmp_path: Path) -> None:
    client, events = make_app(tmp_path, events=FakeEvents(fail=True))
    body = event()
    response = post(client, body, signed(body))
    assert response.status_code == 503
    assert response.json() != RECEIVED
    assert events.calls == []


def test_real_in_process_broker_holds_exactly_one_message(tmp_path: Path) -> None:
    broker = build_broker(None)
    try:
        client, _ = make_app(tmp_path, events=SessionEvents(broker))
        body = event(session_id="sess_real", event_id="evt_real")
        response = post(client, body, signed(body))
        assert (response.status_code, response.json()) == (200, RECEIVED)
        queue = broker.queues[SESSIONS_QUEUE]
        assert queue.qsize() == 1
        message = dramatiq.Message.decode(queue.get_nowait())
        assert message.actor_name == PROCESS_ACTOR
        assert message.queue_name == SESSIONS_QUEUE
        assert tuple(message.args) == ("sess_real",)
        assert message.kwargs == {"event_id": "evt_real", "event_at": 1_700_000_000_000}
        assert all(broker.queues[name].qsize() == 0 for name in broker.queues)
    finally:
        broker.close()


def test_the_in_process_queue_at_its_ceiling_answers_503(tmp_path: Path) -> None:
    """Embedded mode: QUEUE_MAX_MESSAGES counts what the in-process broker holds for the sessions queue."""
    broker = build_broker(None)
    try:
        client, _ = make_app(tmp_path, events=SessionEvents(broker, max_messages=2))
        answers = []
        for number in range(3):
            body = event(session_id=f"sess_{number}", event_id=f"evt_{number}")
            answers.append(post(client, body, signed(body)).status_code)
        assert answers == [200, 200, 503]
        assert broker.queues[SESSIONS_QUEUE].qsize() == 2
        metrics = client.get("/metrics").text
        assert 'facesign_webhooks_received_total{result="queue_full"} 1.0' in metrics
    finally:
        broker.close()


# The order of the checks


def test_oversized_body_with_a_bad_signature_is_413(tmp_path: Path) -> None:
    client, events = make_app(tmp_path)
    response = post(client, padded(MAX_BYTES + 1), {HEADER: "t=1,v1=00"})
    assert response.status_code == 413
    assert events.calls == []


def test_bad_signature_with_malformed_json_is_401(tmp_path: Path) -> None:
    client, events = make_app(tmp_path)
    response = post(client, b"{not json", {HEADER: "t=1,v1=00"})
    assert (response.status_code, response.text) == (401, "Invalid signature")
    assert events.calls == []


def test_bad_signature_on_an_ignored_type_is_401(tmp_path: Path) -> None:
    client, events = make_app(tmp_path)
    response = post(client, event(type_="media.user_photo"), {})
    assert (response.status_code, response.text) == (401, "Invalid signature")


def test_bad_signature_without_session_id_is_401(tmp_path: Path) -> None:
    client, events = make_app(tmp_path)
    body = b'{"type": "session.status"}'
    response = post(client, body, signed(body, secret="wrong"))
    assert (response.status_code, response.text) == (401, "Invalid signature")


# Metrics


def webhook_counts(client: TestClient) -> dict[str, float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    counts = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "facesign_webhooks_received_total":
                counts[sample.labels["result"]] = sample.value
    return counts


def test_metrics_count_webhooks_by_result(tmp_path: Path) -> None:
    client, _ = make_app(tmp_path)
    for n in range(3):
        body = event(session_id=f"sess_{n}", event_id=f"evt_{n}")
        assert post(client, body, signed(body)).status_code == 200
    for _ in range(2):
        assert post(client, event(), {HEADER: "t=1,v1=00"}).status_code == 401
    body = event(type_="media.user_photo")
    assert post(client, body, signed(body)).status_code == 200
    assert post(client, padded(MAX_BYTES + 1), {}).status_code == 413

    counts = webhook_counts(client)
    assert counts["accepted"] == 3
    assert counts["invalid_signature"] == 2
    assert counts.get("ignored") == 1
    assert counts.get("too_large") == 1
    text = client.get("/metrics").text
    assert 'facesign_webhooks_received_total{result="accepted"} 3.0' in text
    assert 'facesign_webhooks_received_total{result="invalid_signature"} 2.0' in text


# Property tests: adversarial input never crashes the endpoint and never enqueues unsigned work


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
json_ish = json_values.map(lambda value: json.dumps(value).encode())
bodies = (
    st.binary(max_size=MAX_BYTES + 200) | json_ish | st.builds(lambda sid: event(session_id=sid), st.text(max_size=40))
)
header_bytes = st.binary(max_size=200).filter(lambda b: not set(b) & {0, 10, 13})
structured_headers = st.builds(
    lambda t, vs: f"t={t}," + ",".join(f"v1={v}" for v in vs),
    st.integers(min_value=0, max_value=10**18) | st.integers(_now() - 400, _now() + 400),
    st.lists(st.text("0123456789abcdef", max_size=70), max_size=4),
)
printable = st.text(st.characters(min_codepoint=32, max_codepoint=126))
header_values = st.none() | header_bytes | printable | structured_headers


def test_unsigned_random_input_never_crashes_and_never_enqueues(tmp_path: Path) -> None:
    client, events = make_app(tmp_path)

    @hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body=bodies, value=header_values, name=st.sampled_from([HEADER, LEGACY_HEADER]))
    def check(body: bytes, value: str | bytes | None, name: str) -> None:
        headers = {} if value is None else {name: value}
        response = client.post(URL, content=body, headers=headers)
        assert response.status_code < 500, response.text
        assert response.status_code == (413 if len(body) > MAX_BYTES else 401)
        assert events.calls == []

    check()


signed_objects = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=20) | json_values,
        "type": st.sampled_from(["session.status", "media.user_photo", "analysis.video"]) | json_values,
        "sessionId": st.text(max_size=30) | json_values,
        "createdAt": st.integers() | json_values,
    },
).flatmap(
    lambda base: st.dictionaries(st.text(max_size=10), json_values, max_size=3).map(lambda extra: {**extra, **base})
)


def _refuse(constant: str) -> Any:
    raise ValueError(constant)


def taken_as_json(body: bytes) -> bool:
    """RFC 8259 JSON in UTF-8, as the receiver takes it: no NaN or Infinity, no escape for a lone
    surrogate, no number beyond a double's range (RFC 8259 lets a parser limit that)."""
    try:
        value = json.loads(body, parse_constant=_refuse, parse_int=float)  # a huge integer reads as inf
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode()
    except ValueError:  # UnicodeEncodeError included
        return False
    return True


def test_correctly_signed_random_objects_get_200_or_400_only(tmp_path: Path) -> None:
    client, events = make_app(tmp_path, webhook_max_bytes=1 << 20)

    @hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(payload=signed_objects, secret=st.sampled_from(SECRETS))
    def check(payload: dict[str, Any], secret: str) -> None:
        events.calls.clear()
        body = json.dumps(payload).encode()
        response = client.post(URL, content=body, headers=signed(body, secret=secret))
        assert response.status_code in (200, 400), response.text
        session_id = payload.get("sessionId")
        if not taken_as_json(body) or not isinstance(payload.get("type"), str):
            assert response.status_code == 400
        elif payload["type"] != "session.status":
            assert response.status_code == 200
        elif isinstance(session_id, str) and session_id.strip():
            assert response.status_code == 200
            event_id = payload.get("id") if isinstance(payload.get("id"), str) and payload["id"] else None
            assert events.calls == [(session_id, event_id)]
            return
        else:
            assert response.status_code == 400
        assert events.calls == []

    check()
