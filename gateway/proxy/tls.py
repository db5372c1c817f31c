"""TLS for the proxy listeners: our own layer over a plain TCP transport.

uvloop's (and asyncio's) SSL transport closes a failed handshake without sending the alert
OpenSSL wrote (CPython gh-98078), so a client with no shared version, suite or group sees a
bare close and the node logs nothing. This layer drives an ``ssl.SSLObject`` over two
``MemoryBIO``s itself: a failed handshake flushes the alert before closing and is logged (info,
rate-limited per reason). After the handshake the connection is its own application's
transport: decrypted bytes go straight to ``Downstream.data_received``, each ``write`` leaves
as one TCP write, and back-pressure is the TCP transport's, passed through both ways.

Memory per idle connection is what OpenSSL keeps plus a few small objects: ``__slots__``, no
read buffer of our own, and input and output fed through the BIOs in slices of one TLS record
(a memory BIO keeps its largest size for life; uvloop's transport feeds it whole socket reads
of up to 256 KB). ``SSL_MODE_RELEASE_BUFFERS`` was measured and left off: no RSS difference
for idle connections (OpenSSL's record buffers are resident only as far as records touched
them), one malloc and free per record (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

log = logging.getLogger("ramparts.proxy")

RECORD = 16384  # plaintext of one TLS record: the unit of every read and write
_SSL_REASON = re.compile(r"\] (.+?)(?: \(_ssl\.c:\d+\))?$")

# connection states
_HELLO, _HANDSHAKE, _OPEN, _CLOSING, _LOST = range(5)


class Counters(Protocol):
    tls_handshakes_failed: int


class FailureLog:
    """At most one info line per reason per ``interval`` seconds; the next line says how
    many like it were not logged in between."""

    __slots__ = ("_seen", "interval")

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._seen: dict[str, tuple[float, int]] = {}  # reason -> (last logged, suppressed)

    def failed(self, reason: str, peer: str, sni: str | None, now: float | None = None
               ) -> bool:
        """Logs the failure unless its reason was logged recently; True if it logged."""
        now = time.monotonic() if now is None else now
        last, suppressed = self._seen.get(reason, (float("-inf"), 0))
        if now - last < self.interval:
            self._seen[reason] = (last, suppressed + 1)
            return False
        self._seen[reason] = (now, 0)
        more = (f" ({suppressed} more with this reason in the last {self.interval:g} s "
                "were not logged)") if suppressed else ""
        log.info("TLS handshake failed: %s; client: %s%s%s", reason, peer,
                 f", server name: {sni}" if sni else "", more)
        return True


def reason_of(exc: ssl.SSLError) -> str:
    """OpenSSL's reason string ("unsupported protocol", "no shared cipher"...)."""
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    match = _SSL_REASON.search(text)
    return match.group(1) if match else (exc.reason or text).lower().replace("_", " ")


def client_hello_sni(data: bytes | memoryview) -> str | None:
    """The server name in a ClientHello at the start of ``data``: for the log of a handshake
    that failed before OpenSSL's SNI callback ran (a version mismatch is found first)."""
    data = bytes(data[:RECORD + 5])
    try:
        if data[0] != 0x16 or data[5] != 0x01:  # handshake record, ClientHello
            return None
        at = 5 + 4 + 2 + 32  # record header, message header, version, random
        at += 1 + data[at]  # session id
        at += 2 + int.from_bytes(data[at:at + 2], "big")  # cipher suites
        at += 1 + data[at]  # compression methods
        end = at + 2 + int.from_bytes(data[at:at + 2], "big")
        at += 2
        while at + 4 <= end:
            kind = int.from_bytes(data[at:at + 2], "big")
            size = int.from_bytes(data[at + 2:at + 4], "big")
            if kind == 0:  # server_name: list length, name type, name length, name
                length = int.from_bytes(data[at + 7:at + 9], "big")
                return data[at + 9:at + 9 + length].decode("ascii") or None
            at += 4 + size
    except (IndexError, UnicodeDecodeError):
        return None
    return None


def _address(peer: Any) -> str:
    if not peer:
        return "unknown"
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


class TLSListener:
    """What the connections of one TLS listener share: the listener context, the
    application's protocol factory, and the count of connections still in their handshake
    (they hold a socket, so they count against ``worker_connections`` with ``live``)."""

    def __init__(self, context: ssl.SSLContext, app: Callable[[], asyncio.Protocol],
                 live: set[Any], limit: int, handshake_timeout: float, stats: Counters,
                 too_many: Callable[[int], None]) -> None:
        self.context = context
        self.app = app
        self.live = live
        self.limit = limit
        self.handshake_timeout = handshake_timeout
        self.stats = stats
        self.too_many = too_many
        self.handshaking: set[TLSConnection] = set()
        self.failures = FailureLog()

    def connection(self) -> TLSConnection:
        return TLSConnection(self)

    def failed(self, conn: TLSConnection, reason: str, hello: memoryview | None) -> None:
        self.stats.tls_handshakes_failed += 1
        sni = getattr(conn.ssl_object, "ramparts_sni", None)
        if sni is None and hello is not None:
            sni = client_hello_sni(hello)
        self.failures.failed(reason, _address(conn.peername), sni)

    def abort_handshakes(self) -> None:
        for conn in list(self.handshaking):
            conn.abort()


class TLSConnection(asyncio.Protocol, asyncio.Transport):
    """The TCP transport's protocol and, once the handshake is done, the application's
    transport. The application is made only after a successful handshake."""

    __slots__ = (
        "_app",
        "_eof",
        "_in",
        "_listener",
        "_obj",
        "_out",
        "_paused",
        "_ssl",
        "_state",
        "_tcp",
        "_timer",
    )

    def __init__(self, listener: TLSListener) -> None:
        self._listener = listener
        self._tcp: asyncio.Transport | None = None
        self._app: asyncio.Protocol | None = None
        self._obj: ssl.SSLObject | None = None
        # the SSLObject's C object: the hot path skips ssl.py's Python-level wrappers
        self._ssl: Any = None
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._timer: asyncio.TimerHandle | None = None
        self._state = _HELLO
        self._paused = False
        self._eof = False  # the client's FIN, held back while decrypted input waits

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        return self._obj

    @property
    def peername(self) -> Any:
        return self._tcp.get_extra_info("peername") if self._tcp is not None else None

    # ------------------------------------------------------------------ TCP side
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tcp = self._tcp = cast(asyncio.Transport, transport)  # uvloop's are no subclasses
        listener = self._listener
        if len(listener.live) + len(listener.handshaking) >= listener.limit:
            listener.too_many(listener.limit)
            self._state = _LOST
            tcp.abort()
            return
        listener.handshaking.add(self)
        self._obj = listener.context.wrap_bio(self._in, self._out, server_side=True)
        self._ssl = self._obj._sslobj  # type: ignore[attr-defined]
        self._timer = asyncio.get_running_loop().call_later(
            listener.handshake_timeout, self._handshake_timed_out)

    def data_received(self, data: bytes) -> None:
        if self._state == _OPEN and len(data) <= RECORD and not self._paused:
            # the common case, inlined: one record in, its plaintext straight to the app
            bio, obj = self._in, self._ssl
            bio.write(data)
            if bio.pending == len(data):  # nothing was left from before
                try:
                    plain = obj.read(len(data))
                except ssl.SSLError:  # partial record, alert: the general path
                    self._read()
                    return
                if not plain:  # the client's close_notify (_ssl returns b"" for it)
                    self._end_of_input()
                    return
                self._app.data_received(plain)  # type: ignore[union-attr]
                if not bio.pending and not obj.pending() and not self._out.pending:
                    return
            self._read()
            return
        if self._state >= _CLOSING:
            return
        view = memoryview(data)
        for start in range(0, len(view), RECORD):  # keeps the BIO small (see module doc)
            self._in.write(view[start:start + RECORD])
            if self._state < _OPEN:
                self._handshake(view if start == 0 and self._state == _HELLO else None)
            elif self._state == _OPEN and not self._paused:
                self._read()
            if self._state > _OPEN:
                return
            if self._paused:
                self._in.write(view[start + RECORD:])
                return

    def _handshake(self, hello: memoryview | None) -> None:
        """``hello``: the connection's first bytes, when these are what is fed."""
        assert self._obj is not None
        self._state = _HANDSHAKE
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except ssl.SSLError as exc:
            self._flush()  # the alert OpenSSL wrote: the reason the client gets to see
            self._fail(reason_of(exc), abort=False, hello=hello)
            return
        self._flush()
        self._established()

    def _established(self) -> None:
        listener = self._listener
        listener.handshaking.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._state = _OPEN
        app = self._app = listener.app()
        app.connection_made(self)
        if self._state == _OPEN and self._in.pending and not self._paused:
            self._read()  # the request that came with the client's Finished

    def _read(self) -> None:
        obj, app, bio = self._ssl, self._app, self._in
        assert app is not None
        try:
            while self._state == _OPEN and not self._paused:
                # a record's plaintext is shorter than its ciphertext: asking for what the
                # BIO holds reads a whole record into an object of about its size
                size = bio.pending or RECORD
                plain = obj.read(size if size < RECORD else RECORD)
                if not plain:
                    raise ssl.SSLZeroReturnError  # _ssl returns b"" for a close_notify
                app.data_received(plain)
                if not bio.pending and not obj.pending():
                    break
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:  # the client's close_notify
            self._end_of_input()
            return
        except ssl.SSLError as exc:
            log.debug("TLS error from %s: %s", _address(self.peername), exc)
            self.abort()
            return
        if self._out.pending:
            self._flush()  # e.g. the answer to a client's KeyUpdate
        if self._eof and not self._paused and self._state == _OPEN:
            self._end_of_input()

    def _end_of_input(self) -> None:
        self._eof = False
        assert self._app is not None
        if not self._app.eof_received():
            self.close()

    def eof_received(self) -> bool | None:
        if self._state < _OPEN:
            self._fail("the client closed the connection in the handshake", abort=False,
                       quiet=self._state == _HELLO)
            return None
        if self._state != _OPEN:
            return None
        if self._paused and (self._in.pending or self._ssl.pending()):
            self._eof = True  # delivered after the input that came before it
            return True
        assert self._app is not None
        keep = self._app.eof_received()
        if not keep:
            self.close()
        return keep

    def connection_lost(self, exc: Exception | None) -> None:
        state, self._state = self._state, _LOST
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if state < _OPEN:
            self._fail("the connection was lost in the handshake", abort=False,
                       quiet=state == _HELLO)
        self._listener.handshaking.discard(self)
        if self._app is not None:
            self._app.connection_lost(exc)
            self._app = None

    def pause_writing(self) -> None:
        if self._app is not None:
            self._app.pause_writing()

    def resume_writing(self) -> None:
        if self._app is not None:
            self._app.resume_writing()

    def _handshake_timed_out(self) -> None:
        self._timer = None
        if self._state < _OPEN:
            self._fail("the client timed out in the handshake", abort=True,
                       quiet=self._state == _HELLO)

    def _fail(self, reason: str, abort: bool, quiet: bool = False,
              hello: memoryview | None = None) -> None:
        """The handshake did not complete: counted and logged (a client that sent nothing
        is closed silently, as nginx does), then the connection is closed."""
        if self._state >= _CLOSING and self._state != _LOST:
            return
        if not quiet:
            self._listener.failed(self, reason, hello)
        self._listener.handshaking.discard(self)
        if self._state != _LOST:
            self._state = _CLOSING
            assert self._tcp is not None
            if abort:
                self._tcp.abort()
            else:
                self._tcp.close()  # after the alert, which is already queued

    def _flush(self) -> None:
        out = self._out
        if out.pending and self._tcp is not None:
            self._tcp.write(out.read())

    # ------------------------------------------------------------------ the application's transport
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._state != _OPEN or not data:
            return
        obj, tcp = self._ssl, self._tcp
        assert tcp is not None
        if len(data) <= RECORD:
            obj.write(data)
            tcp.write(self._out.read())
            return
        view = memoryview(data)
        pieces = []
        for start in range(0, len(view), RECORD):
            obj.write(view[start:start + RECORD])
            pieces.append(self._out.read())
        tcp.writelines(pieces)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("TLS does not support half-closes")

    def close(self) -> None:
        """close_notify, then the TCP connection closes once its buffer is sent."""
        tcp = self.close_write()
        if tcp is not None:
            tcp.close()

    def close_write(self) -> asyncio.Transport | None:
        """close_notify, then the TCP transport, for the caller to end (a lingering close,
        gateway/proxy/linger.py): what the client still sends is no longer read here."""
        if self._state >= _CLOSING:
            return None
        if self._state == _OPEN:
            assert self._obj is not None
            # SSLWantReadError: the client's close_notify is not awaited (nginx)
            with contextlib.suppress(ssl.SSLError):
                self._obj.unwrap()
            self._flush()
        self._state = _CLOSING
        return self._tcp

    def abort(self) -> None:
        if self._state < _LOST:
            self._state = _CLOSING
        if self._tcp is not None:
            self._tcp.abort()

    def is_closing(self) -> bool:
        return self._state != _OPEN or self._tcp is None or self._tcp.is_closing()

    def pause_reading(self) -> None:
        if not self._paused:
            self._paused = True
            if self._tcp is not None and self._state == _OPEN:
                self._tcp.pause_reading()

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            if self._state != _OPEN:
                return
            assert self._tcp is not None
            self._tcp.resume_reading()
            if self._in.pending or self._ssl.pending() or self._eof:
                # as the loop's transports do: input arrives from the loop, never from
                # inside the application's own call
                asyncio.get_running_loop().call_soon(self._resumed)

    def _resumed(self) -> None:
        if self._state == _OPEN and not self._paused:
            self._read()

    def is_reading(self) -> bool:
        return not self._paused and self._state == _OPEN

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        obj = self._obj
        if name == "ssl_object":
            return obj
        if obj is not None:
            if name == "peercert":
                return obj.getpeercert()
            if name == "sslcontext":
                return obj.context
            if name == "cipher":
                return obj.cipher()
            if name == "compression":
                return obj.compression()
        return self._tcp.get_extra_info(name, default) if self._tcp is not None else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None
                                ) -> None:
        if self._tcp is not None:
            self._tcp.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._tcp.get_write_buffer_limits() if self._tcp is not None else (0, 0)

    def get_write_buffer_size(self) -> int:
        return self._tcp.get_write_buffer_size() if self._tcp is not None else 0

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._app = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._app is not None
        return self._app
