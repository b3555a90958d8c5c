"""The audit log's canonical row form and its SHA-256 hash chain."""

from __future__ import annotations

import hashlib
import hmac
import json
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

CHAIN_VERSION = 1
GENESIS = "0" * 64
FIELDS = (
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
)


def format_time(value: datetime) -> str:
    """UTC, microseconds, `Z`: one spelling whatever the database handed back."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _normal(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    return value


def canonical(row: Mapping[str, Any]) -> bytes:
    """Versioned, key-sorted, whitespace-free JSON of exactly the chained fields."""
    doc = {"v": CHAIN_VERSION, **{name: _normal(row.get(name)) for name in FIELDS}}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def chain_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical(row)).hexdigest()


_ID_KEY, _NULL = b'"id":', b"null"


def canonical_around_id(row: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """`canonical(row)` cut where the id's digits go: `before + str(n) + after` is the canonical form
    of the row with id n. For a database that assigns the id under the chain lock and hashes there.

    `"id":null` occurs once: the key is unique, and a quote inside a string value is escaped.
    """
    text = canonical({**row, "id": None})
    at = text.index(_ID_KEY + _NULL) + len(_ID_KEY)
    return text[:at], text[at + len(_NULL) :]


def email_digest(key: bytes, email: str) -> str:
    """Keyed pseudonym of a normalised email: checkable by a key holder, opaque to everyone else."""
    return hmac.new(key, email.strip().lower().encode("utf-8"), hashlib.sha256).hexdigest()
