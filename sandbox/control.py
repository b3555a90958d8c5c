"""The control API tests and demos use to play the person in front of the camera. No auth: it is a sandbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.faults import FaultError
from sandbox.jsonio import BadRequest, error, json_object
from sandbox.state import BadChoice, SandboxState, SessionFinished, SessionNotFound

Handler = Callable[[Request], Awaitable[Response]]

COMPLETE_FIELDS = {"identity", "liveness", "confirmEmail", "status"}
ENROLL_FIELDS = {"email", "name", "phone", "company", "jobTitle"}


def _errors(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except SessionNotFound:
            return error(404, "session not found")
        except SessionFinished as exc:
            return error(409, str(exc))
        except BadRequest as exc:
            return error(exc.status, str(exc))
        except (BadChoice, FaultError) as exc:
            return error(400, str(exc))

    return wrapped


def control_routes(state: SandboxState) -> list[Route]:
    @_errors
    async def complete(request: Request) -> Response:
        body = await json_object(request, COMPLETE_FIELDS, empty_ok=True)
        envelope = state.complete_session(
            request.path_params["session_id"],
            identity=body.get("identity"),
            liveness=body.get("liveness", "live"),
            confirm_email=body.get("confirmEmail", True),
            status=body.get("status", "complete"),
        )
        return JSONResponse(envelope)

    @_errors
    async def deliveries(request: Request) -> Response:
        return JSONResponse(state.deliveries(request.path_params["session_id"]))

    @_errors
    async def enrollments(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(state.enrollments())
        body = await json_object(request, ENROLL_FIELDS)
        profile = state.enroll(
            body.get("email", ""), body.get("name", ""), body.get("phone"), body.get("company"), body.get("jobTitle")
        )
        return JSONResponse(profile, status_code=201)

    @_errors
    async def faults(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(state.faults())
        return JSONResponse(state.update_faults(await json_object(request)))

    async def stats(request: Request) -> Response:
        return JSONResponse(state.stats())

    return [
        Route("/sandbox/stats", stats, methods=["GET"]),
        Route("/sandbox/sessions/{session_id}/complete", complete, methods=["POST"]),
        Route("/sandbox/sessions/{session_id}/deliveries", deliveries, methods=["GET"]),
        Route("/sandbox/enrollments", enrollments, methods=["GET", "POST"]),
        Route("/sandbox/faults", faults, methods=["GET", "POST"]),
    ]
