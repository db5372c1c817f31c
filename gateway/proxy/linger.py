"""nginx's lingering close: a connection answered while its client may still be sending.

Closing a TCP socket that has unread input makes the kernel send a reset instead of a FIN,
and a reset makes the client's kernel drop what it has received but its application not yet
read: a client still sending a body that the gateway refused (an upstream's early 413, a
plugin's 401, a malformed request's 400) would lose the very answer that explains why. nginx
(``lingering_close on``, its default) instead shuts its writing side down once the answer is
out, reads and discards what the client still sends, and closes once the client has been
silent for ``lingering_timeout`` or ``lingering_time`` has passed since it began.

``Lingering`` does that for the TCP transport under a plain or a TLS connection: it becomes
the transport's protocol (the TLS layer has sent its close_notify by then; what follows is
discarded undecrypted), and hands the end of the connection to the protocol it replaced.
"""

from __future__ import annotations

import asyncio
from typing import Any

# ``nginx_http_lingering_close``: nginx's values
OFF, ON, ALWAYS = "off", "on", "always"
MODES = (OFF, ON, ALWAYS)


class Lingering(asyncio.Protocol):
    __slots__ = ("_idle", "_last", "_loop", "_previous", "_tcp", "_timer", "_until")

    def __init__(self, tcp: asyncio.Transport, timeout: float, total: float) -> None:
        self._tcp = tcp
        self._idle = timeout
        self._loop = asyncio.get_running_loop()
        now = self._last = self._loop.time()
        self._until = now + total
        self._previous = tcp.get_protocol()
        tcp.set_protocol(self)
        # after what is queued: the client reads the whole answer, then the end of it
        tcp.write_eof()
        tcp.resume_reading()  # it may have been paused by a body nobody reads now
        self._timer: asyncio.TimerHandle | None = self._loop.call_at(
            min(now + timeout, self._until), self._check)

    def data_received(self, data: bytes) -> None:
        self._last = self._loop.time()  # the timer looks at it when it fires: no re-arming

    def eof_received(self) -> bool:
        return False  # the client is done too: the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._previous.connection_lost(exc)

    def _check(self) -> None:
        deadline = min(self._last + self._idle, self._until)
        now = self._loop.time()
        if now < deadline:
            self._timer = self._loop.call_at(deadline, self._check)
            return
        self._timer = None
        tcp = self._tcp
        if tcp.get_write_buffer_size():
            tcp.abort()  # a client that never read its answer: a close would wait for it
        else:
            tcp.close()

    def end(self, abort: bool = False) -> None:
        """A drain or shutdown: no more waiting."""
        if abort:
            self._tcp.abort()
        else:
            self._tcp.close()


def linger(transport: Any, timeout: float, total: float) -> Lingering | None:
    """Begins a lingering close of ``transport`` (an answer already written to it): a plain
    TCP transport, or the TLS layer, which sends its close_notify and hands its TCP
    transport over (``close_write``). None if the connection is already closing."""
    close_write = getattr(transport, "close_write", None)
    tcp = close_write() if close_write is not None else transport
    if tcp is None or tcp.is_closing():
        return None
    return Lingering(tcp, timeout, total)
