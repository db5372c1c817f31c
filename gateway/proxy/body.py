"""A request body as it arrives from the client, read by the exchange with back-pressure."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol


class ClientGone(ConnectionError):
    """The client disconnected before its exchange was over."""


class BodyTimeout(ClientGone):
    """The client sent nothing for ``client_body_timeout`` (nginx answers 408)."""


class BodyTooLarge(ClientGone):
    """A chunked body grew past ``client_max_body_size`` (nginx answers 413)."""


class BodyMalformed(ClientGone):
    """The client's chunked body broke its framing as it came (nginx answers 400)."""


class BodyInterrupted(Exception):
    """The upstream answered before the body was all sent: the rest is not forwarded."""


class FlowControl(Protocol):
    def body_buffered(self, size: int) -> None: ...
    def continue_needed(self) -> None: ...


class RequestBody:
    """Chunks queue up as the parser delivers them; above ``high`` buffered bytes the
    connection stops reading the socket until the exchange has taken them below ``low``.
    An ``Expect: 100-continue`` is answered on the first read: a request refused without
    reading its body never asks the client to send it."""

    __slots__ = ("_chunks", "_error", "_flow", "_size", "_waiter", "complete", "expect",
                 "limit", "read_from", "received", "timeout", "too_large")

    def __init__(self, flow: FlowControl, expect: bool, timeout: float = 60.0,
                 limit: int = 0, length: int | None = None) -> None:
        """``limit``: nginx's ``client_max_body_size`` (0: none); ``length``: the
        Content-Length, which the exchange refuses before anything when it is over."""
        self._flow = flow
        self.timeout = timeout  # between two reads of the client's body (nginx's)
        self.limit = limit or 1 << 62
        # why the body is over the limit (nginx's error line), once it is known to be
        self.too_large: str | None = None
        if length is not None and length > self.limit:
            self.too_large = f"client intended to send too large body: {length} bytes"
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self.complete = False
        self.expect = expect
        self.read_from = False  # the exchange started reading: the body is not replayable
        self.received = 0

    # -------------------------------------------------------------- parser side (sync)
    def feed(self, data: bytes) -> None:
        received = self.received = self.received + len(data)
        if self._error is not None:
            return  # nobody will read it: dropped as it arrives
        if received > self.limit:  # a chunked body (a Content-Length is checked first)
            # before the exchange began (it all came in one read), the exchange refuses it
            # before any upstream; later, the read of the body fails
            why = self.too_large = ("client intended to send too large chunked body: "
                                    f"{received}+ bytes")
            self.fail(BodyTooLarge(why))
            return
        self._chunks.append(data)
        self._size += len(data)
        self._flow.body_buffered(self._size)
        self._wake()

    def finish(self) -> None:
        self.complete = True
        self._wake()

    def fail(self, exc: BaseException) -> None:
        if self._error is None and not (self.complete and not self._chunks):
            self._error = exc
            self._chunks.clear()
            self._size = 0
            self._flow.body_buffered(0)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -------------------------------------------------------------- exchange side
    async def read(self) -> bytes:
        """The next chunk; ``b""`` once the body is complete."""
        self.read_from = True
        while True:
            if self._error is not None:
                raise self._error
            if self._chunks:
                data = self._chunks.popleft()
                self._size -= len(data)
                self._flow.body_buffered(self._size)
                return data
            if self.complete:
                return b""
            if self.expect:
                self.expect = False
                self._flow.continue_needed()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(self.timeout):
                    await self._waiter
            except TimeoutError:
                raise BodyTimeout("the client sent no body bytes within "
                                  f"{self.timeout:g} s") from None
            finally:
                self._waiter = None

    @property
    def taken(self) -> bool:
        """The whole body arrived and the exchange read every byte of it."""
        return self.complete and not self._chunks and self._error is None

    @property
    def finished(self) -> bool:
        """Everything the client sent was taken (or the body was given up)."""
        return (self.complete and not self._chunks) or self._error is not None
