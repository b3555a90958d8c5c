"""JSON request and response helpers shared by the vendor API and the control API."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

MAX_BODY_BYTES = 1_048_576  # flows are small; anything larger is a mistake, not a session


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refused with 413 once it passes `limit` without reading the rest."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest("request body too large", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def json_object(request: Request, allowed: set[str] | None = None, empty_ok: bool = False) -> dict[str, Any]:
    """The body as a JSON object; with `allowed`, unknown keys are refused so that typos do not pass silently."""
    raw = await read_body(request)
    if not raw.strip() and empty_ok:
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    if allowed is not None and set(body) - allowed:
        raise BadRequest(f"unknown fields: {', '.join(sorted(set(body) - allowed))}")
    return body
