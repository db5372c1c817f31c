"""Raw TCP upstreams for e2e tests: a listener on a thread that hands each accepted
connection to ``handle`` (answer, hang up, stall, record — whatever the test needs)."""

from __future__ import annotations

import socket
import threading


class RawUpstream:
    """A TCP listener on 127.0.0.1 (a free port) serving on a daemon thread."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.handle(conn)

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError
