"""`GET /audit/decisions`: auditor-token auth, validated filters, an opaque cursor, JSON or CSV."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.db.audit_log import Filters
from domain.rules import APPROVED, DENIED, REASONS
from domain.times import parse_time
from receiver.services import Services
from usecases import audit
from usecases.audit_formats import write_records

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_TEXT = 128
FILTER_PARAMS = ("since", "until", "outcome", "reason", "sessionId", "attemptId")
KNOWN_PARAMS = frozenset((*FILTER_PARAMS, "limit", "cursor"))
UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="audit"'}
NO_STORE = {"Cache-Control": "no-store"}
# A NUL byte would reach PostgreSQL as an error; receiver/openapi.yaml states the same pattern.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BadFilter(ValueError):
    """A query parameter an auditor got wrong; the message says which and how."""


def _time(name: str, value: str) -> Any:
    try:
        return parse_time(value)
    except ValueError as exc:
        raise BadFilter(f"{name}: {exc}") from None


def parse_filters(params: Mapping[str, str]) -> Filters:
    unknown = sorted(set(params) - KNOWN_PARAMS)
    if unknown:
        raise BadFilter(f"unknown parameter {unknown[0]!r}; allowed: {', '.join(sorted(KNOWN_PARAMS))}")
    for name in ("sessionId", "attemptId"):
        if len(params.get(name, "")) > MAX_TEXT:
            raise BadFilter(f"{name}: longer than {MAX_TEXT} characters")
        if CONTROL.search(params.get(name, "")):
            raise BadFilter(f"{name}: must not contain control characters")
    since = _time("since", params["since"]) if params.get("since") else None
    until = _time("until", params["until"]) if params.get("until") else None
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
    return hashlib.sha256(json.dumps(filters.as_dict(), sort_keys=True).encode()).hexdigest()[:16]


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


async def auditor_of(services: Services, request: Request) -> str | None:
    return await run_in_threadpool(audit.authenticate, services.deps.db, bearer_token(request))


def unauthorized() -> Response:
    return JSONResponse({"error": "a valid auditor token is required"}, status_code=401, headers=UNAUTHORIZED)


def to_csv(records: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    write_records(records, "csv", buffer)
    return buffer.getvalue()


def decisions_endpoint(services: Services) -> Callable[[Request], Any]:
    async def decisions(request: Request) -> Response:
        auditor = await auditor_of(services, request)
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
        fmt = "csv" if wants_csv else "json"
        items = await run_in_threadpool(audit.decisions_page, services.deps.db, auditor, filters, limit, after, fmt)
        following = encode_cursor(items[-1]["id"], filters) if len(items) == limit else None
        if wants_csv:
            headers = {**NO_STORE, "X-Next-Cursor": following} if following else NO_STORE
            return Response(to_csv(items), media_type="text/csv; charset=utf-8", headers=headers)
        return JSONResponse({"items": items, "next": following}, headers=NO_STORE)

    return decisions
