"""Session ticket keys every process derives alike: from one secret and the clock.

Each rotation ``period`` is an epoch (``floor(unix time / period)``); an epoch's key is
HKDF-SHA256 of the secret with the epoch number as ``info``. Every process holding the same
secret (the workers of a node, handed it by the supervisor through an inherited pipe) derives
the same keys without talking to the others, and rotation needs no channel. New tickets are
encrypted under the current epoch's key; tickets of the previous epoch still resume (and of
the next one, for clocks of nodes slightly apart), and get a fresh ticket; older ones get a
full handshake. So a ticket resumes for between one and two periods, and an epoch's key opens
only the tickets issued in its period. The secret is never written to disk nor logged.

Without the libssl bridge there is no ticket key API: OpenSSL's random per-process keys stay
in use (tickets resume only on the process that issued them, and never rotate).
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.tls import libssl
from gateway.tls.libssl_tickets import TicketCallback, TicketKey

log = logging.getLogger("ramparts.tls")

SECRET_BYTES = 32
SECRET_FD_ENV = "RAMPARTS_TICKET_SECRET_FD"  # the supervisor's pipe, inherited by a worker
_SALT = b"ramparts session ticket keys v1"


class TicketSecretError(Exception):
    """The inherited secret could not be read (the worker must not start without it)."""


def new_secret() -> bytes:
    return os.urandom(SECRET_BYTES)


def secret_pipe(secret: bytes) -> int:
    """The supervisor's side of the contract: a pipe already holding ``secret`` (32 bytes fit
    any pipe buffer, so nothing blocks), its write end closed. Start the worker with the
    returned read end inherited (``pass_fds``) and ``RAMPARTS_TICKET_SECRET_FD`` naming it,
    then close it here. Not inheritable unless passed: other children never see it."""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"a session ticket secret has {SECRET_BYTES} bytes")
    read, write = os.pipe()
    try:
        os.write(write, secret)
    finally:
        os.close(write)
    return read


def secret_from_fd(fd: int) -> bytes:
    """Read exactly 32 bytes from an inherited pipe ``fd`` and close it (the supervisor
    writes the secret and closes its end)."""
    try:
        chunks: list[bytes] = []
        size = 0
        while size < SECRET_BYTES:
            chunk = os.read(fd, SECRET_BYTES - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise TicketSecretError(f"cannot read the session ticket secret from fd {fd}: "
                                f"{exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    if size != SECRET_BYTES:
        raise TicketSecretError(f"the session ticket secret on fd {fd} has {size} bytes, "
                                f"expected {SECRET_BYTES}")
    return b"".join(chunks)


def inherited_secret() -> bytes | None:
    """The secret the worker supervisor handed this process (the pipe fd named by
    ``RAMPARTS_TICKET_SECRET_FD``), or None when started on its own."""
    value = os.environ.pop(SECRET_FD_ENV, None)  # popped: never passed further down
    if value is None:
        return None
    try:
        fd = int(value)
    except ValueError:
        raise TicketSecretError(f"{SECRET_FD_ENV}={value!r}: expected a file descriptor "
                                f"number") from None
    return secret_from_fd(fd)


def derive(secret: bytes, epoch: int) -> TicketKey:
    """The key of ``epoch``: 80 bytes of HKDF-SHA256 (name, HMAC key, AES key)."""
    raw = HKDF(algorithm=hashes.SHA256(), length=80, salt=_SALT,
               info=b"epoch %d" % epoch).derive(secret)
    return TicketKey(name=raw[:16], hmac=raw[16:48], aes=raw[48:])


@dataclass(frozen=True, slots=True)
class _Window:
    """The keys in use during one epoch: the current one, and by name the three accepted."""

    epoch: int
    current: TicketKey
    by_name: Mapping[bytes, tuple[TicketKey, int]]


class TicketKeys:
    """The key schedule of one secret. Sync and memory-only on the handshake path: the three
    keys in use are derived once per epoch and swapped in one assignment."""

    def __init__(self, secret: bytes, period: float,
                 clock: Callable[[], float] = time.time) -> None:
        if len(secret) != SECRET_BYTES:
            raise ValueError(f"a session ticket secret has {SECRET_BYTES} bytes")
        if period <= 0:
            raise ValueError("the rotation period must be positive")
        self._secret = secret
        self.period = period
        self.clock = clock
        self._window: _Window | None = None

    def __repr__(self) -> str:  # never show the secret
        return f"TicketKeys(period={self.period})"

    def epoch(self) -> int:
        return int(self.clock() // self.period)

    def _keys(self) -> _Window:
        epoch = self.epoch()
        window = self._window
        if window is None or window.epoch != epoch:
            keys = {e: derive(self._secret, e) for e in (epoch - 1, epoch, epoch + 1)}
            window = _Window(epoch, keys[epoch],
                             MappingProxyType({k.name: (k, e) for e, k in keys.items()}))
            self._window = window  # one assignment
        return window

    def encrypting(self) -> TicketKey:
        """The key new tickets are encrypted under."""
        return self._keys().current

    @property
    def wall_clock(self) -> bool:
        """Whether epochs follow the wall clock (a test's clock does not: C cannot keep its
        keys, ``_tickets.c``)."""
        return self.clock is time.time

    def encrypting_until(self) -> tuple[TicketKey, float, float]:
        """The same, with the wall-clock interval it stays so: its epoch (empty when this
        schedule's clock is not the wall clock: the caller asks again for every ticket)."""
        window = self._keys()
        if not self.wall_clock:
            return window.current, 0.0, 0.0
        return window.current, window.epoch * self.period, (window.epoch + 1) * self.period

    def decrypting(self, name: bytes) -> tuple[TicketKey, bool] | None:
        """The key a ticket named ``name`` was encrypted under, if it is still accepted (the
        previous, current or next epoch), and whether the client should get a fresh ticket
        (any key but the current one)."""
        window = self._keys()
        found = window.by_name.get(name)
        if found is None:
            return None
        key, of = found
        return key, of != window.epoch


def install(ctx: ssl.SSLContext, keys: TicketKeys,
            refuse: Callable[[str | None], bool] = lambda _: False) -> TicketCallback | None:
    """Make ``ctx`` (the listener context) issue and accept tickets under ``keys``; a ticket
    presented for an SNI where ``refuse`` says so (mtls-auth asks for a certificate there)
    gets a full handshake. Returns the callback to keep referenced, or None without the
    bridge (said once in the log)."""
    bridge = libssl.BRIDGE
    if bridge is None or bridge.tickets is None:
        log.warning("%s: session tickets use per-process keys that never rotate; a ticket "
                    "resumes only on the process that issued it",
                    f"libssl bridge unavailable ({libssl.UNAVAILABLE})" if bridge is None
                    else bridge.tickets_unavailable)
        return None

    def decrypting(name: bytes, server_name: str | None) -> tuple[TicketKey, bool] | None:
        return None if refuse(server_name) else keys.decrypting(name)

    return bridge.set_ticket_callback(ctx, keys.encrypting_until, decrypting, keys.wall_clock)


def disable(ctx: ssl.SSLContext) -> None:
    """Kong's ``ssl_session_tickets off``: no ticket issued (TLS 1.2 and 1.3)."""
    ctx.options |= ssl.OP_NO_TICKET
    ctx.num_tickets = 0
