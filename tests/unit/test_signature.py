"""The webhook signature, `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + raw body>`."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.signature import HEADER, LEGACY_HEADER, MAX_HEADER_LENGTH, OK, Verdict, compute, sign, verify

NOW = 1_717_171_200
TOLERANCE = 300
SECRET = "whsec_current"
OLD_SECRET = "whsec_previous"
BODY = b'{"id":"evt_01J9Z","type":"session.status","createdAt":1717171200000,"sessionId":"sess_1"}'
REASONS = {"ok", "missing", "malformed", "stale", "mismatch"}

fast = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sig(timestamp: int = NOW, secret: str = SECRET, body: bytes = BODY) -> str:
    return compute(secret, timestamp, body)


def flip(body: bytes) -> bytes:
    return body[:10] + bytes([body[10] ^ 0x01]) + body[11:]


def padded_to(length: int) -> str:
    """A valid header padded with an ignored `v0` entry to exactly `length` characters."""
    base = sign(SECRET, NOW, BODY) + ",v0="
    return base + "a" * (length - len(base))


# (id, header, body, secrets, now, expected reason)
CASES: list[tuple[str, str | None, bytes, tuple[str, ...], float, str]] = [
    ("valid", sign(SECRET, NOW, BODY), BODY, (SECRET,), NOW, "ok"),
    ("v1-before-t", f"v1={sig()},t={NOW}", BODY, (SECRET,), NOW, "ok"),
    ("missing-header", None, BODY, (SECRET,), NOW, "missing"),
    ("empty-header", "", BODY, (SECRET,), NOW, "missing"),
    ("no-t", f"v1={sig()}", BODY, (SECRET,), NOW, "malformed"),
    ("no-v1", f"t={NOW}", BODY, (SECRET,), NOW, "malformed"),
    ("only-v0", f"t={NOW},v0={sig()}", BODY, (SECRET,), NOW, "malformed"),
    ("non-numeric-t", f"t=abc,v1={sig()}", BODY, (SECRET,), NOW, "malformed"),
    ("empty-t", f"t=,v1={sig()}", BODY, (SECRET,), NOW, "malformed"),
    ("negative-t", f"t=-{NOW},v1={sig()}", BODY, (SECRET,), NOW, "malformed"),
    ("plus-t", f"t=+{NOW},v1={sig()}", BODY, (SECRET,), NOW, "malformed"),
    ("fractional-t", f"t={NOW}.0,v1={sig()}", BODY, (SECRET,), NOW, "malformed"),
    ("milliseconds-t", sign(SECRET, NOW * 1000, BODY), BODY, (SECRET,), NOW, "stale"),
    ("non-ascii-digits-t", f"t=\u0661\u0667\u0661\u0667,v1={sig()}", BODY, (SECRET,), NOW, "malformed"),
    ("two-t", f"t={NOW},t={NOW},v1={sig()}", BODY, (SECRET,), NOW, "malformed"),
    ("no-equals", "garbage", BODY, (SECRET,), NOW, "malformed"),
    ("empty-entry", f"t={NOW},,v1={sig()}", BODY, (SECRET,), NOW, "malformed"),
    ("trailing-comma", f"t={NOW},v1={sig()},", BODY, (SECRET,), NOW, "malformed"),
    ("too-old-by-tolerance-plus-one", sign(SECRET, NOW - TOLERANCE - 1, BODY), BODY, (SECRET,), NOW, "stale"),
    ("too-far-future-by-tolerance-plus-one", sign(SECRET, NOW + TOLERANCE + 1, BODY), BODY, (SECRET,), NOW, "stale"),
    ("exactly-tolerance-old", sign(SECRET, NOW - TOLERANCE, BODY), BODY, (SECRET,), NOW, "ok"),
    ("exactly-tolerance-future", sign(SECRET, NOW + TOLERANCE, BODY), BODY, (SECRET,), NOW, "ok"),
    ("fraction-past-tolerance-old", sign(SECRET, NOW - TOLERANCE, BODY), BODY, (SECRET,), NOW + 0.001, "stale"),
    ("t-zero", sign(SECRET, 0, BODY), BODY, (SECRET,), NOW, "stale"),
    ("stale-and-wrong-secret", sign("nope", NOW - 10_000, BODY), BODY, (SECRET,), NOW, "stale"),
    ("wrong-secret", sign("whsec_wrong", NOW, BODY), BODY, (SECRET,), NOW, "mismatch"),
    ("no-secrets-configured", sign(SECRET, NOW, BODY), BODY, (), NOW, "mismatch"),
    ("several-v1-one-matches", f"t={NOW},v1={'0' * 64},v1={sig()},v1={'f' * 64}", BODY, (SECRET,), NOW, "ok"),
    ("several-v1-none-match", f"t={NOW},v1={'0' * 64},v1={sig(secret='x')}", BODY, (SECRET,), NOW, "mismatch"),
    ("v1-and-unknown-schemes", f"t={NOW},v0=abc,v2=def,v1={sig()}", BODY, (SECRET,), NOW, "ok"),
    ("rotation-second-secret", sign(OLD_SECRET, NOW, BODY), BODY, (SECRET, OLD_SECRET), NOW, "ok"),
    ("rotation-first-secret", sign(SECRET, NOW, BODY), BODY, (SECRET, OLD_SECRET), NOW, "ok"),
    ("rotation-neither", sign("whsec_other", NOW, BODY), BODY, (SECRET, OLD_SECRET), NOW, "mismatch"),
    (
        "rotation-one-v1-per-secret",
        f"t={NOW},v1={sig(secret=OLD_SECRET)},v1={'a' * 64}",
        BODY,
        (SECRET, OLD_SECRET),
        NOW,
        "ok",
    ),
    ("body-one-byte-altered", sign(SECRET, NOW, BODY), flip(BODY), (SECRET,), NOW, "mismatch"),
    ("body-one-byte-appended", sign(SECRET, NOW, BODY), BODY + b"\n", (SECRET,), NOW, "mismatch"),
    ("body-one-byte-removed", sign(SECRET, NOW, BODY), BODY[:-1], (SECRET,), NOW, "mismatch"),
    ("body-empty", sign(SECRET, NOW, b""), b"", (SECRET,), NOW, "ok"),
    ("signed-with-other-timestamp", f"t={NOW}," + f"v1={sig(NOW - 1)}", BODY, (SECRET,), NOW, "mismatch"),
    ("spaces-after-comma", f"t={NOW}, v1={sig()}", BODY, (SECRET,), NOW, "ok"),
    ("spaces-around-header", f"  t={NOW},v1={sig()}  ", BODY, (SECRET,), NOW, "ok"),
    ("tabs-around-entries", f"t={NOW}\t,\tv1={sig()}", BODY, (SECRET,), NOW, "ok"),
    ("uppercase-key", f"T={NOW},V1={sig()}", BODY, (SECRET,), NOW, "malformed"),
    ("empty-v1", f"t={NOW},v1=", BODY, (SECRET,), NOW, "mismatch"),
    ("truncated-v1", f"t={NOW},v1={sig()[:-1]}", BODY, (SECRET,), NOW, "mismatch"),
    ("v1-with-extra-char", f"t={NOW},v1={sig()}0", BODY, (SECRET,), NOW, "mismatch"),
    ("non-hex-v1", f"t={NOW},v1={'z' * 64}", BODY, (SECRET,), NOW, "mismatch"),
    ("non-ascii-v1", f"t={NOW},v1={'é' * 64}", BODY, (SECRET,), NOW, "mismatch"),
    ("non-ascii-v1-same-length", f"t={NOW},v1={sig()[:-1]}\u00e9", BODY, (SECRET,), NOW, "mismatch"),
    ("emoji-v1", f"t={NOW},v1=\U0001f600", BODY, (SECRET,), NOW, "mismatch"),
    ("latin1-mojibake-v1", f"t={NOW},v1=\u00c3\u00a9", BODY, (SECRET,), NOW, "mismatch"),
    ("header-at-max-length", padded_to(MAX_HEADER_LENGTH), BODY, (SECRET,), NOW, "ok"),
    ("header-one-past-max-length", padded_to(MAX_HEADER_LENGTH + 1), BODY, (SECRET,), NOW, "malformed"),
    ("very-long-header", padded_to(1_000_000), BODY, (SECRET,), NOW, "malformed"),
    (
        "many-v1-entries-none-matching",
        f"t={NOW}," + ",".join(["v1=" + "0" * 64] * 60),
        BODY,
        (SECRET,),
        NOW,
        "mismatch",
    ),
]


@pytest.mark.parametrize(
    ("header", "body", "secrets", "now", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_verify_table(header: str | None, body: bytes, secrets: tuple[str, ...], now: float, reason: str) -> None:
    verdict = verify(header, body, secrets, now, TOLERANCE)
    assert verdict == Verdict(reason == "ok", reason)


def test_huge_timestamp_is_stale_not_an_exception() -> None:
    header = f"t={'9' * 400},v1={'0' * 64}"
    assert len(header) < MAX_HEADER_LENGTH
    assert verify(header, BODY, (SECRET,), float(NOW), TOLERANCE) == Verdict(False, "stale")


def test_compute_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert compute(SECRET, NOW, BODY) == expected
    assert compute(SECRET, str(NOW), BODY) == expected
    assert len(expected) == 64


def test_sign_formats_the_header() -> None:
    assert sign(SECRET, NOW, BODY) == f"t={NOW},v1={compute(SECRET, NOW, BODY)}"


def test_known_vector() -> None:
    # independent of compute(): the HMAC of "1700000000.{}" under "secret"
    digest = hmac.new(b"secret", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert verify(f"t=1700000000,v1={digest}", b"{}", ["secret"], 1_700_000_000, 300) == OK


def test_header_names() -> None:
    assert HEADER == "X-FaceSign-Signature"
    assert LEGACY_HEADER == "FaceSign-Signature"


def test_ok_verdict() -> None:
    assert OK == Verdict(True, "ok")


# --- properties -------------------------------------------------------------------------------------------

secrets_st = st.text(min_size=1, max_size=40)
bodies = st.binary(max_size=512)
timestamps = st.integers(min_value=0, max_value=2**34)


@fast
@given(
    secret=secrets_st,
    body=bodies,
    timestamp=timestamps,
    skew=st.integers(-TOLERANCE, TOLERANCE),
    others=st.lists(secrets_st, max_size=3),
    position=st.integers(0, 3),
)
def test_any_valid_signature_within_tolerance_passes(
    secret: str, body: bytes, timestamp: int, skew: int, others: list[str], position: int
) -> None:
    secrets = list(others)
    secrets.insert(min(position, len(secrets)), secret)
    assert verify(sign(secret, timestamp, body), body, secrets, timestamp + skew, TOLERANCE) == OK


@fast
@given(secret=secrets_st, body=st.binary(min_size=1, max_size=512), data=st.data())
def test_any_single_byte_mutation_of_the_body_fails(secret: str, body: bytes, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(body) - 1))
    replacement = data.draw(st.integers(0, 255).filter(lambda b: b != body[index]))
    mutated = body[:index] + bytes([replacement]) + body[index + 1 :]
    assert verify(sign(secret, NOW, body), mutated, [secret], NOW, TOLERANCE) == Verdict(False, "mismatch")


@fast
@given(secret=secrets_st, body=bodies, data=st.data())
def test_inserting_or_deleting_a_body_byte_fails(secret: str, body: bytes, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(body)))
    if body and data.draw(st.booleans()):
        mutated = body[: min(index, len(body) - 1)] + body[min(index, len(body) - 1) + 1 :]
    else:
        mutated = body[:index] + bytes([data.draw(st.integers(0, 255))]) + body[index:]
    assert verify(sign(secret, NOW, body), mutated, [secret], NOW, TOLERANCE) == Verdict(False, "mismatch")


@fast
@given(secret=secrets_st, body=bodies, timestamp=timestamps, other=timestamps)
def test_any_change_of_the_timestamp_fails(secret: str, body: bytes, timestamp: int, other: int) -> None:
    if other == timestamp:
        other = timestamp + 1
    header = f"t={other},v1={compute(secret, timestamp, body)}"
    verdict = verify(header, body, [secret], timestamp, TOLERANCE)
    assert not verdict.ok
    assert verdict.reason == ("stale" if abs(other - timestamp) > TOLERANCE else "mismatch")


@fast
@given(secret=secrets_st, body=bodies, data=st.data())
def test_any_mutation_of_the_hex_signature_fails(secret: str, body: bytes, data: st.DataObject) -> None:
    digest = compute(secret, NOW, body)
    index = data.draw(st.integers(0, len(digest) - 1))
    char = data.draw(st.characters(blacklist_characters=f",{digest[index]}", blacklist_categories=("Cs", "Zs", "Cc")))
    mutated = digest[:index] + char + digest[index + 1 :]
    assert verify(f"t={NOW},v1={mutated}", body, [secret], NOW, TOLERANCE) == Verdict(False, "mismatch")


@fast
@given(secret=secrets_st, body=bodies, data=st.data())
def test_any_hex_digit_change_of_the_signature_fails(secret: str, body: bytes, data: st.DataObject) -> None:
    digest = compute(secret, NOW, body)
    index = data.draw(st.integers(0, len(digest) - 1))
    char = data.draw(st.sampled_from("0123456789abcdef").filter(lambda c: c != digest[index]))
    mutated = digest[:index] + char + digest[index + 1 :]
    assert verify(f"t={NOW},v1={mutated}", body, [secret], NOW, TOLERANCE) == Verdict(False, "mismatch")


@fast
@given(secret=secrets_st, body=bodies, wrong=secrets_st)
def test_a_signature_under_another_secret_fails(secret: str, body: bytes, wrong: str) -> None:
    if wrong == secret:
        wrong += "x"
    assert verify(sign(wrong, NOW, body), body, [secret], NOW, TOLERANCE) == Verdict(False, "mismatch")


def _check_never_raises(header: str, body: bytes, now: float) -> None:
    verdict = verify(header, body, [SECRET, OLD_SECRET], now, TOLERANCE)
    assert verdict.reason in REASONS
    assert verdict.ok == (verdict.reason == "ok")


headers_like = st.builds(
    lambda parts: ",".join(parts),
    st.lists(
        st.one_of(
            st.builds(lambda v: f"t={v}", st.text(max_size=12) | st.integers(-(10**12), 10**12).map(str)),
            st.builds(lambda v: f"v1={v}", st.text(max_size=70) | st.just(compute(SECRET, NOW, BODY))),
            st.text(max_size=20),
        ),
        max_size=6,
    ),
)


@fast
@given(header=st.text(max_size=300), body=bodies, now=st.floats(0, 2**33, allow_nan=False))
def test_arbitrary_text_headers_never_raise(header: str, body: bytes, now: float) -> None:
    _check_never_raises(header, body, now)


@fast
@given(header=headers_like, body=st.sampled_from([BODY, b""]))
def test_header_shaped_text_never_raises(header: str, body: bytes) -> None:
    _check_never_raises(header, body, float(NOW))


@fast
@given(raw=st.binary(max_size=200))
def test_latin1_decoded_header_bytes_never_raise(raw: bytes) -> None:
    # Starlette hands header values over decoded as latin-1
    _check_never_raises(raw.decode("latin-1"), BODY, float(NOW))


CORRUPTIONS: list[tuple[str, Callable[[str], str]]] = [
    ("swap-t-value", lambda h: h.replace(f"t={NOW}", f"t={NOW + 1}")),
    ("uppercase-hex", lambda h: h.upper().replace("T=", "t=").replace("V1=", "v1=")),
    ("drop-last-char", lambda h: h[:-1]),
]


@pytest.mark.parametrize(("name", "corrupt"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_corrupted_valid_header_fails(name: str, corrupt: Callable[[str], str]) -> None:
    header = corrupt(sign(SECRET, NOW, BODY))
    assert verify(header, BODY, [SECRET], NOW, TOLERANCE) == Verdict(False, "mismatch")
