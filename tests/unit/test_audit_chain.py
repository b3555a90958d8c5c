"""The audit log's canonical row form and its SHA-256 hash chain."""

from __future__ import annotations

import hashlib
import hmac
import json
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.audit_chain import (
    CHAIN_VERSION,
    FIELDS,
    GENESIS,
    canonical,
    chain_hash,
    email_digest,
)
from domain.times import format_time

KEY = b"k" * 32
DECIDED = datetime(2025, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)


def row(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 1,
        "decidedAt": DECIDED,
        "attemptId": "att_1",
        "sessionId": "sess_1",
        "clientReferenceId": "rec_1",
        "outcome": "approved",
        "reason": "verified",
        "sessionStatus": "complete",
        "recognition": "recognized",
        "liveness": "livenessDetected",
        "conversation": "identity_confirmed",
        "matchedUserId": "user-alice",
        "emailDigest": email_digest(KEY, "alice@example.com"),
        "rulesVersion": "1",
        "eventId": "evt_1",
        "messageId": "msg_1",
    }
    base.update(changes)
    return base


def test_fields_are_the_spec_row_without_the_chain_columns() -> None:
    assert set(FIELDS) == {
        "id",
        "decidedAt",
        "attemptId",
        "sessionId",
        "clientReferenceId",
        "outcome",
        "reason",
        "sessionStatus",
        "recognition",
        "liveness",
        "conversation",
        "matchedUserId",
        "emailDigest",
        "rulesVersion",
        "eventId",
        "messageId",
    }
    assert len(FIELDS) == len(set(FIELDS))


def test_genesis() -> None:
    assert GENESIS == "0" * 64


def test_canonical_form() -> None:
    data = canonical(row())
    doc = json.loads(data)
    assert doc["v"] == CHAIN_VERSION
    assert set(doc) == {"v", *FIELDS}
    assert doc["decidedAt"] == "2025-03-01T12:30:45.123456Z"
    assert b" " not in data and b"\n" not in data
    assert list(doc) == sorted(doc)
    assert data == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_canonical_is_stable_under_key_order() -> None:
    forward = row()
    backward = dict(reversed(list(forward.items())))
    assert list(forward) != list(backward)
    assert canonical(forward) == canonical(backward)
    assert chain_hash(GENESIS, forward) == chain_hash(GENESIS, backward)


@settings(max_examples=50, deadline=None)
@given(st.permutations(FIELDS))
def test_canonical_is_stable_under_any_key_order(order: list[str]) -> None:
    base = row()
    assert canonical({name: base[name] for name in order}) == canonical(base)


def test_unknown_keys_are_ignored_and_missing_ones_are_null() -> None:
    assert canonical({**row(), "email": "alice@example.com", "name": "Alice"}) == canonical(row())
    sparse = row()
    del sparse["eventId"]
    assert canonical(sparse) == canonical(row(eventId=None))
    assert json.loads(canonical({}))["sessionId"] is None


def test_nfc_and_nfd_give_the_same_bytes() -> None:
    nfc = unicodedata.normalize("NFC", "Ren\u00e9e M\u00fcller")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    assert canonical(row(matchedUserId=nfd)) == canonical(row(matchedUserId=nfc))
    assert chain_hash(GENESIS, row(reason=nfd)) == chain_hash(GENESIS, row(reason=nfc))
    assert nfc.encode("utf-8") in canonical(row(matchedUserId=nfd))


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=40), field=st.sampled_from([f for f in FIELDS if f != "decidedAt"]))
def test_unicode_normal_forms_hash_alike(text: str, field: str) -> None:
    forms = {unicodedata.normalize(form, text) for form in ("NFC", "NFD")}
    digests = {chain_hash(GENESIS, row(**{field: value})) for value in forms}
    assert len(digests) == 1
    assert {canonical(row(**{field: value})) for value in forms} == {canonical(row(**{field: text}))}


@settings(max_examples=200, deadline=None)
@given(a=st.text(max_size=20), b=st.text(max_size=20))
def test_texts_with_different_nfc_forms_hash_differently(a: str, b: str) -> None:
    if unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b):
        return
    assert chain_hash(GENESIS, row(reason=a)) != chain_hash(GENESIS, row(reason=b))


def test_non_ascii_is_written_as_utf8_not_escaped() -> None:
    assert "Zoë".encode() in canonical(row(matchedUserId="Zoë"))


# --- time ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(datetime(2025, 3, 1, 12, 30, 45, 123456, tzinfo=UTC), "2025-03-01T12:30:45.123456Z", id="utc"),
        pytest.param(datetime(2025, 3, 1, 12, 30, 45, 123456), "2025-03-01T12:30:45.123456Z", id="naive-is-utc"),
        pytest.param(
            datetime(2025, 3, 1, 14, 30, 45, 123456, tzinfo=timezone(timedelta(hours=2))),
            "2025-03-01T12:30:45.123456Z",
            id="plus-two-hours",
        ),
        pytest.param(
            datetime(2025, 2, 28, 21, 0, tzinfo=timezone(timedelta(hours=-5))),
            "2025-03-01T02:00:00.000000Z",
            id="minus-five-crosses-midnight",
        ),
        pytest.param(datetime(2025, 3, 1), "2025-03-01T00:00:00.000000Z", id="zero-microseconds-kept"),
    ],
)
def test_format_time(value: datetime, expected: str) -> None:
    assert format_time(value) == expected


def test_naive_datetime_is_treated_as_utc_in_the_hash() -> None:
    naive = DECIDED.replace(tzinfo=None)
    assert canonical(row(decidedAt=naive)) == canonical(row(decidedAt=DECIDED))
    other_zone = DECIDED.astimezone(timezone(timedelta(hours=9)))
    assert canonical(row(decidedAt=other_zone)) == canonical(row(decidedAt=DECIDED))


def test_one_microsecond_changes_the_hash() -> None:
    later = DECIDED + timedelta(microseconds=1)
    assert chain_hash(GENESIS, row(decidedAt=later)) != chain_hash(GENESIS, row())


# --- the chain -----------------------------------------------------------------------------------------------


def test_chain_hash_is_sha256_of_prev_newline_canonical() -> None:
    prev = "ab" * 32
    expected = hashlib.sha256(prev.encode() + b"\n" + canonical(row())).hexdigest()
    assert chain_hash(prev, row()) == expected
    assert len(expected) == 64


def test_chain_hash_is_deterministic() -> None:
    assert chain_hash(GENESIS, row()) == chain_hash(GENESIS, row())


def _changed(value: Any) -> Any:
    if isinstance(value, datetime):
        return value + timedelta(seconds=1)
    if isinstance(value, int):
        return value + 1
    return f"{value}x"


@pytest.mark.parametrize("field", FIELDS)
def test_hash_changes_when_any_field_changes(field: str) -> None:
    original = row()
    assert chain_hash(GENESIS, row(**{field: _changed(original[field])})) != chain_hash(GENESIS, original)


@pytest.mark.parametrize("field", [f for f in FIELDS if f != "id"])
def test_hash_changes_when_a_field_becomes_null(field: str) -> None:
    assert chain_hash(GENESIS, row(**{field: None})) != chain_hash(GENESIS, row())


def test_type_of_a_value_is_part_of_the_hash() -> None:
    assert chain_hash(GENESIS, row(id=1)) != chain_hash(GENESIS, row(id="1"))


def test_prev_hash_is_part_of_the_hash() -> None:
    first = chain_hash(GENESIS, row(id=1))
    assert chain_hash(first, row(id=2)) != chain_hash(GENESIS, row(id=2))
    assert chain_hash("f" * 64, row(id=2)) != chain_hash("e" * 64, row(id=2))


def test_a_chain_detects_edits_deletions_and_reordering() -> None:
    rows = [row(id=i, sessionId=f"sess_{i}") for i in range(1, 5)]

    def hashes(items: list[dict[str, Any]]) -> list[str]:
        out, prev = [], GENESIS
        for item in items:
            prev = chain_hash(prev, item)
            out.append(prev)
        return out

    good = hashes(rows)
    edited = [*rows[:1], row(id=2, sessionId="sess_2", outcome="denied"), *rows[2:]]
    assert hashes(edited)[1:] != good[1:]
    deleted = [rows[0], *rows[2:]]
    assert hashes(deleted)[-1] != good[-1]
    reordered = [rows[1], rows[0], *rows[2:]]
    assert hashes(reordered)[-1] != good[-1]


# --- email digest --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    ["alice@example.com", "Alice@Example.com", "  ALICE@EXAMPLE.COM  ", "\talice@example.com\n"],
)
def test_email_digest_normalises_case_and_whitespace(spelling: str) -> None:
    assert email_digest(KEY, spelling) == email_digest(KEY, "alice@example.com")


def test_email_digest_is_keyed_hmac_of_normalised_email() -> None:
    expected = hmac.new(KEY, b"alice@example.com", hashlib.sha256).hexdigest()
    assert email_digest(KEY, " Alice@Example.com ") == expected


def test_email_digest_depends_on_the_key() -> None:
    assert email_digest(KEY, "alice@example.com") != email_digest(b"other-key", "alice@example.com")


def test_email_digest_depends_on_the_email() -> None:
    assert email_digest(KEY, "alice@example.com") != email_digest(KEY, "bob@example.com")


def test_email_digest_does_not_contain_the_email() -> None:
    digest = email_digest(KEY, "alice@example.com")
    assert "alice" not in digest
    assert len(digest) == 64
    assert "alice@example.com" not in canonical(row()).decode()


def _reference_canonical(row: dict[str, Any]) -> bytes:
    """The canonical form as first written: every row hashed before the key-by-key writer must still verify."""

    def normal(value: Any) -> Any:
        if isinstance(value, datetime):
            return format_time(value)
        return unicodedata.normalize("NFC", value) if isinstance(value, str) else value

    doc = {"v": CHAIN_VERSION, **{name: normal(row.get(name)) for name in FIELDS}}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


VALUES = st.one_of(
    st.none(),
    st.text(),
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=-7))]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*FIELDS, "prevHash", "hash", "extra"]), VALUES))
def test_the_canonical_bytes_are_those_of_sorted_json(values: dict[str, Any]) -> None:
    assert canonical(values) == _reference_canonical(values)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30))])))
def test_format_time_spells_every_time_as_strftime_does(value: datetime) -> None:
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        return
    assert format_time(value) == utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
