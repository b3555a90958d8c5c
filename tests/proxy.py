"""A TCP proxy for fault tests: `pause()` makes whatever is behind it hang (connections stay open, nothing
answers, the kernel still acknowledges every packet), `stop()` makes it refuse connections."""

from __future__ import annotations

import selectors
import socket
import threading
from types import TracebackType


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = int(self._listener.getsockname()[1])
        self._running = threading.Event()  # set: traffic flows; clear: everything hangs
        self._running.set()
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        """Close the listener and every connection: new connections are refused, open ones reset."""
        self._stopped.set()
        self._running.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.close()
                except OSError:
                    pass
            self._sockets.clear()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            self._running.wait()  # paused: connections wait in the backlog, unanswered
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(a, selectors.EVENT_READ, b)
        selector.register(b, selectors.EVENT_READ, a)
        try:
            while not self._stopped.is_set():
                if not self._running.is_set():
                    self._running.wait(0.1)
                    continue
                for key, _ in selector.select(timeout=0.1):
                    source, sink = key.fileobj, key.data
                    assert isinstance(source, socket.socket)
                    data = source.recv(65536)
                    if not data:
                        return
                    sink.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            for sock in (a, b):
                try:
                    sock.close()
                except OSError:
                    pass
