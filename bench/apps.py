"""The receiver's yardsticks, each a Starlette app served by uvicorn exactly like the receiver.

- `bare_app`: reads the body and answers 200, nothing else: the ceiling.
- `vendor_style_app`: the synchronous handler of the vendor's integration guide: verify, fetch
  the session from FaceSign and write to the database, all inside the request (a threadpool
  endpoint, a fresh HTTP connection and database connection per request, as the guide does).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import closing

import requests
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from domain.signature import HEADER, verify

OK = b'{"received":true}'


def bare_app() -> Starlette:
    async def receive(request: Request) -> Response:
        await request.body()
        return Response(OK, media_type="application/json")

    return Starlette(routes=[Route("/webhooks/facesign", receive, methods=["POST"])])


def vendor_style_app() -> Starlette:
    secret = os.environ["FACESIGN_WEBHOOK_SECRET"]
    api_url = os.environ["FACESIGN_API_URL"].rstrip("/")
    database = os.environ["BENCH_SQLITE_PATH"]
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS events (session_id TEXT, status TEXT)")

    def handle(body: bytes, header: str | None) -> Response:
        if not verify(header, body, (secret,), time.time(), 300).ok:
            return PlainTextResponse("Invalid signature", status_code=401)
        event = json.loads(body)
        answer = requests.get(
            f"{api_url}/sessions/{event['sessionId']}", headers={"Authorization": "Bearer bench"}, timeout=10
        )
        session = answer.json()["session"]
        with closing(sqlite3.connect(database, timeout=30)) as db, db:
            db.execute("INSERT INTO events VALUES (?, ?)", (event["sessionId"], session["status"]))
        return Response(OK, media_type="application/json")

    async def receive(request: Request) -> Response:
        body = await request.body()
        return await run_in_threadpool(handle, body, request.headers.get(HEADER))

    return Starlette(routes=[Route("/webhooks/facesign", receive, methods=["POST"])])
