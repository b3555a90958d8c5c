"""The sandbox as a process of its own, with finished sessions made up front for the benchmark.

`python -m bench.sandbox_proc PORT ATTEMPTS.json SESSIONS.json EMAIL`: enrols EMAIL, creates and
completes (as that identity, live, email confirmed) one session per attempt id in ATTEMPTS.json,
writes `{attempt id: session id}` to SESSIONS.json, then listens (no webhooks: the benchmark
posts its own).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import uvicorn

from domain.flow import build_recovery_flow
from sandbox.app import create_sandbox_app
from sandbox.server import base_url, bind
from sandbox.state import SandboxState


def main(port: int, attempts_file: Path, sessions_file: Path, email: str) -> None:
    sock = bind("127.0.0.1", port)
    state = SandboxState(base_url("127.0.0.1", port), None, "")
    state.enroll(email, "Bench User")
    flow = build_recovery_flow()
    sessions = {}
    for attempt_id in json.loads(attempts_file.read_text()):
        session_id = state.create_session(flow, client_reference_id=attempt_id)["session"]["id"]
        state.complete_session(session_id, identity=email)
        sessions[attempt_id] = session_id
    sessions_file.write_text(json.dumps(sessions))
    config = uvicorn.Config(
        create_sandbox_app(state), log_level="warning", access_log=False, lifespan="off", loop="uvloop"
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
