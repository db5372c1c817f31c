"""A request body as it arrives from the client, read by the exchange with back-pressure."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol


class ClientGone(ConnectionError):
    """The client disconnected before its exchange was over."""


class BodyTimeout(ClientGone):
    """The client sent nothing for ``client_body_timeout`` (nginx answers 408)."""


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
                 "read_from", "received", "timeout")

    def __init__(self, flow: FlowControl, expect: bool, timeout: float = 60.0) -> None:
        self._flow = flow
        self.timeout = timeout  # between two reads of the client's body (nginx's)
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
        self.received += len(data)
        if self._error is not None:
            return  # nobody will read it: dropped as it arrives
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
    def finished(self) -> bool:
        """Everything the client sent was taken (or the body was given up)."""
        return (self.complete and not self._chunks) or self._error is not None
