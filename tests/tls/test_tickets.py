"""The session ticket key schedule (pure), the supervisor's fd contract, and the bridge's
ticket callback in real in-memory TLS handshakes (two server contexts standing for two
processes)."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest

from gateway.tls import libssl, tickets
from gateway.tls.libssl_tickets import sni_of
from gateway.tls.tickets import TicketKeys, TicketSecretError, derive, new_secret
from tests.pki import self_signed
from tests.tls.memory import handshake as _handshake
from tests.tls.memory import server as _server

SECRET = bytes(range(32))


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_same_secret_and_epoch_give_the_same_key() -> None:
    assert derive(SECRET, 7) == derive(bytes(range(32)), 7)
    keys = {derive(SECRET, e) for e in range(5)} | {derive(new_secret(), 7)}
    assert len({k.name for k in keys}) == 6  # names differ per epoch and per secret
    key = derive(SECRET, 7)
    assert (len(key.name), len(key.hmac), len(key.aes)) == (16, 32, 32)


def test_the_key_rotates_with_the_epoch() -> None:
    clock = Clock(1000.0)
    keys = TicketKeys(SECRET, 60, clock)
    assert keys.epoch() == 16
    first = keys.encrypting()
    assert first == derive(SECRET, 16)
    clock.now = 1019.9
    assert keys.encrypting() == first
    clock.now = 1020.0
    assert keys.encrypting() == derive(SECRET, 17)


@pytest.mark.parametrize(("issued", "now", "accepted"), [
    (16, 16, (True, False)),   # current epoch: accepted as is
    (16, 17, (True, True)),    # previous epoch: accepted, the client gets a fresh ticket
    (17, 16, (True, True)),    # next epoch: another node's clock is ahead
    (16, 18, None),            # two epochs old: full handshake
    (18, 16, None),            # two epochs ahead
])
def test_which_epochs_are_accepted(issued: int, now: int,
                                   accepted: tuple[bool, bool] | None) -> None:
    keys = TicketKeys(SECRET, 60, Clock(now * 60 + 1.0))
    found = keys.decrypting(derive(SECRET, issued).name)
    assert (found is not None, found[1]) == accepted if found else accepted is None
    if found is not None:
        assert found[0] == derive(SECRET, issued)


def test_a_ticket_of_another_secret_is_unknown() -> None:
    keys = TicketKeys(SECRET, 60, Clock(1000.0))
    assert keys.decrypting(derive(new_secret(), 16).name) is None
    assert keys.decrypting(b"\0" * 16) is None


def test_bad_schedules_and_the_secret_is_never_shown() -> None:
    with pytest.raises(ValueError):
        TicketKeys(b"short", 60)
    with pytest.raises(ValueError):
        TicketKeys(SECRET, 0)
    assert SECRET.hex() not in repr(TicketKeys(SECRET, 60))
    assert len(new_secret()) == 32 and new_secret() != new_secret()


def test_the_supervisors_pipe_hands_the_secret_over() -> None:
    read = tickets.secret_pipe(SECRET)
    assert not os.get_inheritable(read)  # only a worker started with pass_fds gets it
    assert tickets.secret_from_fd(read) == SECRET
    with pytest.raises(ValueError):
        tickets.secret_pipe(b"short")


def test_secret_from_fd_reads_32_bytes_and_closes() -> None:
    read, write = os.pipe()
    os.write(write, SECRET[:10])
    os.write(write, SECRET[10:])
    os.close(write)
    assert tickets.secret_from_fd(read) == SECRET
    with pytest.raises(OSError):
        os.fstat(read)  # closed


@pytest.mark.parametrize("payload", [b"", SECRET[:31]])
def test_secret_from_fd_refuses_a_short_secret(payload: bytes) -> None:
    read, write = os.pipe()
    os.write(write, payload)
    os.close(write)
    with pytest.raises(TicketSecretError, match=f"has {len(payload)} bytes, expected 32"):
        tickets.secret_from_fd(read)
    with pytest.raises(OSError):
        os.fstat(read)


def test_inherited_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tickets.SECRET_FD_ENV, raising=False)
    assert tickets.inherited_secret() is None
    monkeypatch.setenv(tickets.SECRET_FD_ENV, "three")
    with pytest.raises(TicketSecretError, match="expected a file descriptor number"):
        tickets.inherited_secret()
    read, write = os.pipe()
    os.write(write, SECRET)
    os.close(write)
    monkeypatch.setenv(tickets.SECRET_FD_ENV, str(read))
    assert tickets.inherited_secret() == SECRET
    assert tickets.SECRET_FD_ENV not in os.environ  # not handed further down


@pytest.mark.parametrize(("extension", "name"), [
    (b"\x00\x09\x00\x00\x06a.test", "a.test"),
    (b"\x00\x0d\x01\x00\x01x\x00\x00\x06a.test", "a.test"),  # an unknown entry first
    (b"\x00\x09\x00\x00\x09a.test", None),                    # truncated name
    (b"\x00\x00", None),
    (b"", None),
])
def test_sni_of_a_server_name_extension(extension: bytes, name: str | None) -> None:
    assert sni_of(extension) == name


# ---------------------------------------------------------------- real handshakes


needs_bridge = pytest.mark.skipif(libssl.BRIDGE is None or libssl.BRIDGE.tickets is None,
                                  reason="no libssl ticket key callback here")


@needs_bridge
def test_two_contexts_with_the_same_secret_resume_each_others_tickets(tmp_path: Path) -> None:
    self_signed(tmp_path, "s", "a.test", alg="ec")
    cert, key = tmp_path / "s.crt", tmp_path / "s.key"
    first, _k1 = _server(cert, key, TicketKeys(SECRET, 3600))
    second, _k2 = _server(cert, key, TicketKeys(SECRET, 3600))
    other, _k3 = _server(cert, key, TicketKeys(new_secret(), 3600))
    default, _ = _server(cert, key, None)
    session = _handshake(first)
    assert session is not None and session.has_ticket
    assert _handshake(second, session) is not None
    assert _handshake(other, session) is None
    assert _handshake(default, session) is None
    own = _handshake(default)
    assert own is not None and _handshake(default, own) is not None  # OpenSSL's own keys


@needs_bridge
def test_a_refused_sni_gets_a_full_handshake(tmp_path: Path) -> None:
    self_signed(tmp_path, "s", "a.test", alg="ec")
    server, _held = _server(tmp_path / "s.crt", tmp_path / "s.key", TicketKeys(SECRET, 3600),
                            refuse="mtls.test")
    session = _handshake(server)
    assert _handshake(server, session, name="mtls.test") is None
    assert _handshake(server, session, name="a.test") is not None


@needs_bridge
@pytest.mark.parametrize(("version", "fresh"), [
    (ssl.TLSVersion.TLSv1_3, True),   # a ticket is for one use (RFC 8446 C.4), as nginx does
    (ssl.TLSVersion.TLSv1_2, False),  # a ticket of the current key stays in use
])
def test_a_resumed_connection_gets_a_fresh_ticket_in_tls_1_3(
        tmp_path: Path, version: ssl.TLSVersion, fresh: bool) -> None:
    self_signed(tmp_path, "s", "a.test", alg="ec")
    server, _held = _server(tmp_path / "s.crt", tmp_path / "s.key", TicketKeys(SECRET, 3600))
    first = _handshake(server, version=version)
    assert first is not None
    again = _handshake(server, first, version=version)
    assert again is not None  # resumed
    assert (again.id != first.id) is fresh
