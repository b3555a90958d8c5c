"""The sandbox's Starlette app: the FaceSign API routes the service calls, plus the hosted page and the control API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.control import control_routes
from sandbox.jsonio import BadRequest, error, json_object
from sandbox.page import page_routes
from sandbox.state import SandboxState, SessionNotFound
from sandbox.traffic import retry_after_header

Handler = Callable[[Request], Awaitable[Response]]


def create_sandbox_app(state: SandboxState) -> Starlette:
    return Starlette(
        routes=[*vendor_routes(state), *page_routes(state), *control_routes(state), Route("/healthz", _healthz)]
    )


async def _healthz(request: Request) -> Response:
    return JSONResponse({"ok": True})


def vendor_routes(state: SandboxState) -> list[Route]:
    def vendor(handler: Handler) -> Handler:
        """Latency, auth and injected failures, in the order a caller of the real API would meet them."""

        async def wrapped(request: Request) -> Response:
            over_limit = state.arrive()  # counted as it arrives, as the vendor's limit would
            if "session_id" in request.path_params:
                state.count_request(request.path_params["session_id"], "get")
            latency = state.latency_seconds()
            if latency:
                await asyncio.sleep(latency)
            scheme, _, key = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not key.strip():
                return error(401, "missing or invalid API key")
            if over_limit is not None:
                return error(429, "rate limit exceeded", {"Retry-After": retry_after_header(over_limit)})
            if state.roll("rate429"):
                return error(429, "rate limit exceeded", {"Retry-After": "1"})
            if state.roll("errorRate"):
                return error(500, "internal error (injected by the sandbox)")
            try:
                return await handler(request)
            except BadRequest as exc:
                return error(exc.status, str(exc))

        return wrapped

    @vendor
    async def create_session(request: Request) -> Response:
        body = await json_object(request)
        flow = body.get("flow")
        if not isinstance(flow, list) or not flow or not all(_has_id(node) for node in flow):
            raise BadRequest("flow must be a non-empty list of nodes, each with a string id")
        reference = body.get("clientReferenceId")
        if reference is not None and not isinstance(reference, str):
            raise BadRequest("clientReferenceId must be a string")
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise BadRequest("metadata must be an object")
        video_ai = body.get("videoAIAnalysisEnabled")
        if video_ai is not None and not isinstance(video_ai, bool):
            raise BadRequest("videoAIAnalysisEnabled must be a boolean")
        created = state.create_session(flow, reference, metadata, video_ai)
        state.count_request(created["session"]["id"], "create")
        return JSONResponse(created)

    @vendor
    async def get_session(request: Request) -> Response:
        try:
            return JSONResponse(state.envelope(request.path_params["session_id"]))
        except SessionNotFound:
            return error(404, "session not found")

    return [
        Route("/sessions", create_session, methods=["POST"]),
        Route("/sessions/{session_id}", get_session, methods=["GET"]),
    ]


def _has_id(node: Any) -> bool:
    return isinstance(node, dict) and isinstance(node.get("id"), str) and bool(node["id"])
