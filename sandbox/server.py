"""Running the sandbox: in a background thread (tests, embedded `serve`) or in the foreground (the CLI)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from sandbox.app import create_sandbox_app
from sandbox.state import SandboxState

log = logging.getLogger(__name__)

START_TIMEOUT = 10.0  # seconds
STOP_TIMEOUT = 5.0


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; binding before uvicorn starts is what lets port 0 be known in advance."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def base_url(host: str, port: int) -> str:
    # A wildcard address is where we listen, not where anyone can reach us.
    if host in ("0.0.0.0", "", "::"):  # noqa: S104 - comparing, not binding
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class SandboxServer:
    """The sandbox in a daemon thread. `state` exists before `start()`, so identities can be enrolled early."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        webhook_url: str | None = None,
        webhook_secret: str = "",
        *,
        public_url: str | None = None,
        **state_options: Any,
    ) -> None:
        self.host = host
        self.port = port
        self._public_url = public_url
        self.state = SandboxState(public_url or base_url(host, port), webhook_url, webhook_secret, **state_options)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return base_url(self.host, self.port)

    def start(self) -> SandboxServer:
        if self._thread is not None:
            raise RuntimeError("sandbox server already started")
        sock = bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        if self._public_url is None:
            self.state.public_url = self.url
        config = uvicorn.Config(
            create_sandbox_app(self.state), log_level="warning", lifespan="off", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="sandbox-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive():
                sock.close()
                raise RuntimeError("sandbox server failed to start")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sandbox server did not start within {START_TIMEOUT} s")
            time.sleep(0.01)
        log.info("FaceSign sandbox listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
        self.state.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def run(
    host: str,
    port: int,
    webhook_url: str | None,
    webhook_secret: str,
    *,
    public_url: str | None = None,
    **state_options: Any,
) -> None:
    """Serve the sandbox in the foreground until interrupted (the `facesign-recovery sandbox` command)."""
    sock = bind(host, port)
    port = sock.getsockname()[1]
    state = SandboxState(public_url or base_url(host, port), webhook_url, webhook_secret, **state_options)
    log.warning(
        "FaceSign SANDBOX (not the real vendor) on %s; webhooks %s",
        base_url(host, port),
        f"to {webhook_url}" if webhook_url else "disabled (no webhook URL)",
    )
    try:
        uvicorn.Server(uvicorn.Config(create_sandbox_app(state), log_level="info", lifespan="off")).run(sockets=[sock])
    finally:
        state.close()
        sock.close()
