"""The receiver's fast path: one exact method and path skip Starlette's stack; nothing else changes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from receiver.fastpath import FastPathStarlette


class Hot:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        assert isinstance(scope["app"], FastPathStarlette)
        await PlainTextResponse("hot")(scope, receive, send)


async def other(request: Request) -> Response:
    return PlainTextResponse("other")


def make() -> tuple[TestClient, Hot]:
    hot = Hot()
    app = FastPathStarlette(routes=[Route("/hook", hot, methods=["POST"]), Route("/other", other)])
    app.fast_path("POST", "/hook", hot)
    return TestClient(app), hot


def test_the_fast_route_reaches_its_endpoint() -> None:
    client, hot = make()
    assert client.post("/hook").text == "hot"
    assert hot.calls == 1


def test_other_methods_and_paths_go_through_starlette() -> None:
    client, hot = make()
    assert client.get("/hook").status_code == 405
    assert client.post("/hook/", follow_redirects=False).status_code == 307  # Starlette's slash redirect
    assert client.get("/other").text == "other"
    assert client.get("/missing").status_code == 404
    assert hot.calls == 0
