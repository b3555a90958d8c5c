"""`GET /audit/decisions` (SPEC §4): auditor-token auth, validated filters, an opaque cursor, JSON or CSV."""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters import auditors
from adapters.audit_log import RECORD_FIELDS, Filters, query, to_record
from adapters.db import transaction
from domain.rules import APPROVED, DENIED, REASONS
from receiver.services import Services

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_TEXT = 128
FILTER_PARAMS = ("since", "until", "outcome", "reason", "sessionId", "attemptId")
KNOWN_PARAMS = frozenset((*FILTER_PARAMS, "limit", "cursor"))
UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="audit"'}
NO_STORE = {"Cache-Control": "no-store"}


class BadFilter(ValueError):
    """A query parameter an auditor got wrong; the message says which and how."""


def parse_time(name: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadFilter(f"{name}: not an ISO 8601 time (e.g. 2026-11-19 or 2026-11-19T08:00:00Z): {value!r}") from None
    return (parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed).astimezone(UTC)


def parse_filters(params: Mapping[str, str]) -> Filters:
    unknown = sorted(set(params) - KNOWN_PARAMS)
    if unknown:
        raise BadFilter(f"unknown parameter {unknown[0]!r}; allowed: {', '.join(sorted(KNOWN_PARAMS))}")
    for name in ("sessionId", "attemptId"):
        if len(params.get(name, "")) > MAX_TEXT:
            raise BadFilter(f"{name}: longer than {MAX_TEXT} characters")
        if not params.get(name, "").isprintable():  # a NUL byte would reach PostgreSQL as an error
            raise BadFilter(f"{name}: must be printable text")
    since = parse_time("since", params["since"]) if params.get("since") else None
    until = parse_time("until", params["until"]) if params.get("until") else None
    if since and until and since >= until:
        raise BadFilter("since must be earlier than until")
    outcome = params.get("outcome") or None
    if outcome not in (None, APPROVED, DENIED):
        raise BadFilter(f"outcome: must be {APPROVED} or {DENIED}, not {outcome!r}")
    reason = params.get("reason") or None
    if reason is not None and reason not in REASONS:
        raise BadFilter(f"reason: unknown {reason!r}; one of {', '.join(REASONS)}")
    return Filters(since, until, outcome, reason, params.get("sessionId") or None, params.get("attemptId") or None)


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise BadFilter(f"limit: a whole number from 1 to {MAX_LIMIT}, not {value!r}")
    return int(value)


def fingerprint(filters: Filters) -> str:
    """Ties a cursor to the filters it was issued for, so it cannot silently page a different query."""
    doc = {key: value.isoformat() if isinstance(value, datetime) else value for key, value in asdict(filters).items()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def encode_cursor(last_id: int, filters: Filters) -> str:
    raw = json.dumps({"after": last_id, "f": fingerprint(filters)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, filters: Filters) -> int:
    try:
        doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        after, mark = doc["after"], doc["f"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise BadFilter("cursor: not a cursor this API issued") from None
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise BadFilter("cursor: not a cursor this API issued")
    if mark != fingerprint(filters):
        raise BadFilter("cursor: issued for different filters; repeat the filters of the first page")
    return after


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def described(filters: Filters, **extra: Any) -> dict[str, Any]:
    """Filters as the access log keeps them: JSON-friendly, only what was given."""
    doc = {key: value.isoformat() if isinstance(value, datetime) else value for key, value in asdict(filters).items()}
    return {**doc, **extra}


def check_token(services: Services, token: str | None) -> str | None:
    """The auditor's name, or None for a missing, unknown or revoked token."""
    if not token:
        return None
    with services.sessions() as session:
        return auditors.authenticate(session, token)


def read_recorded(
    services: Services, auditor: str, action: str, filters_doc: dict[str, Any], read: Callable[[Any], Any]
) -> Any:
    """Note the access, then read: committed first and on its own, so that no read goes unrecorded."""
    with transaction(services.sessions) as session:
        auditors.record_access(session, auditor, action, filters_doc, datetime.now(UTC))
    with services.sessions() as session:
        return read(session)


def unauthorized() -> Response:
    return JSONResponse({"error": "a valid auditor token is required"}, status_code=401, headers=UNAUTHORIZED)


def to_csv(records: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RECORD_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def decisions_endpoint(services: Services) -> Callable[[Request], Any]:
    async def decisions(request: Request) -> Response:
        auditor = await run_in_threadpool(check_token, services, bearer_token(request))
        if auditor is None:
            return unauthorized()
        params = dict(request.query_params)
        try:
            filters = parse_filters(params)
            limit = parse_limit(params.get("limit"))
            after = decode_cursor(params["cursor"], filters) if params.get("cursor") else 0
        except BadFilter as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        wants_csv = "text/csv" in request.headers.get("accept", "")
        doc = described(filters, limit=limit, after=after or None, format="csv" if wants_csv else "json")

        def read(session: Any) -> list[dict[str, Any]]:
            return [to_record(row) for row in query(session, filters, limit, after_id=after)]

        items = await run_in_threadpool(read_recorded, services, auditor, "decisions", doc, read)
        following = encode_cursor(items[-1]["id"], filters) if len(items) == limit else None
        if wants_csv:
            headers = {**NO_STORE, "X-Next-Cursor": following} if following else NO_STORE
            return Response(to_csv(items), media_type="text/csv; charset=utf-8", headers=headers)
        return JSONResponse({"items": items, "next": following}, headers=NO_STORE)

    return decisions
