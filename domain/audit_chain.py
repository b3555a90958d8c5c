"""The audit log's canonical row form and its SHA-256 hash chain."""

from __future__ import annotations

import hashlib
import hmac
import json
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from json.encoder import encode_basestring
from typing import Any

from domain.times import format_time

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


def _normal(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    return value


def _json(value: Any) -> str:
    return json.dumps(_normal(value), ensure_ascii=False)


# The document's keys in sorted order, each with what precedes its value: the JSON is written key by key,
# so that a full verification (one call per row) spends its time hashing rather than sorting and encoding.
_SLOTS = tuple(
    (("{" if index == 0 else ",") + encode_basestring(key) + ":", key)
    for index, key in enumerate(sorted(("v", *FIELDS)))
)


def canonical(row: Mapping[str, Any]) -> bytes:
    """Versioned, key-sorted, whitespace-free JSON of exactly the chained fields: byte for byte
    `json.dumps({"v": CHAIN_VERSION, **fields}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`
    with every string in NFC and every time as `format_time` spells it."""
    parts: list[str] = []
    for prefix, key in _SLOTS:
        value = CHAIN_VERSION if key == "v" else row.get(key)
        if isinstance(value, str):
            text = encode_basestring(unicodedata.normalize("NFC", value))
        elif value is None:
            text = "null"
        elif type(value) is int:  # not bool, which json writes as true/false
            text = int.__repr__(value)
        else:  # times, and any other type exactly as json.dumps writes it
            text = _json(value)
        parts += (prefix, text)
    parts.append("}")
    return "".join(parts).encode("utf-8")


def chain_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical(row)).hexdigest()


def keyed_digest(key: bytes, value: str) -> str:
    """Keyed pseudonym (HMAC-SHA256): checkable by a key holder, opaque to everyone else."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def email_digest(key: bytes, email: str) -> str:
    """Keyed pseudonym of a normalised email."""
    return keyed_digest(key, email.strip().lower())


def address_digest(key: bytes, address: str) -> str:
    """Keyed pseudonym of a client address, in one spelling (`::FFFF:10.0.0.1` is `::ffff:10.0.0.1`)."""
    return keyed_digest(key, address.strip().lower())
