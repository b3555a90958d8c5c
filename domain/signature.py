"""FaceSign webhook signatures: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + raw body>`."""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

HEADER = "X-FaceSign-Signature"
LEGACY_HEADER = "FaceSign-Signature"
MAX_HEADER_LENGTH = 4096


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str  # "ok", "missing", "malformed", "stale", "mismatch": for logs and metrics only
    # The signed `t` (unix seconds) of a valid signature: what was signed, not part of the verdict.
    timestamp: int | None = field(default=None, compare=False)


OK = Verdict(True, "ok")


@functools.lru_cache(maxsize=16)
def _keyed(secret: str) -> hmac.HMAC:
    """The HMAC keyed with this secret, never updated: each message hashes a copy of it (keying a
    new HMAC costs OpenSSL more than hashing a webhook does)."""
    return hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)


def compute(secret: str, timestamp: int | str, body: bytes) -> str:
    mac = _keyed(secret).copy()
    mac.update(str(timestamp).encode("ascii") + b"." + body)
    return mac.hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value FaceSign would send for this body at this time."""
    return f"t={timestamp},v1={compute(secret, timestamp, body)}"


def verify(header: str | None, body: bytes, secrets: Sequence[str], now: float, tolerance: int) -> Verdict:
    """Check a signature header against every configured secret, in constant time per candidate."""
    if not header:
        return Verdict(False, "missing")
    if len(header) > MAX_HEADER_LENGTH:
        return Verdict(False, "malformed")
    timestamp: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return Verdict(False, "malformed")
        if key == "t":
            if timestamp is not None:
                return Verdict(False, "malformed")
            timestamp = value
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or not timestamp.isascii() or not timestamp.isdigit():
        return Verdict(False, "malformed")
    # Past 15 digits `t` is millions of years off, and would overflow a float in the subtraction.
    if len(timestamp) > 15 or abs(now - int(timestamp)) > tolerance:
        return Verdict(False, "stale")
    matched = False
    for secret in secrets:
        expected = compute(secret, timestamp, body).encode("ascii")
        for candidate in candidates:
            # Non-ASCII candidates cannot match; compare_digest needs ASCII str or bytes.
            matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    return Verdict(True, "ok", int(timestamp)) if matched else Verdict(False, "mismatch")
