"""The ticket callback's encrypting half in C (``_tickets.c``): which tickets ask Python, that
C's tickets open wherever Python's would, and that a context without a slot (all taken, or
the extension not built) still issues and resumes tickets through Python alone."""

from __future__ import annotations

import dataclasses
import gc
import shutil
import ssl
import time
from pathlib import Path

import pytest

from gateway.tls import libssl
from gateway.tls.libssl_tickets import TicketCallback
from gateway.tls.tickets import TicketKeys
from tests.pki import self_signed
from tests.tls.memory import handshake, server

SECRET = bytes(range(32, 64))

pytestmark = pytest.mark.skipif(libssl.BRIDGE is None or libssl.BRIDGE.tickets is None,
                                reason="no libssl ticket key callback here")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("tickets")
    self_signed(where, "s", "a.test", alg="ec")
    return where / "s.crt", where / "s.key"


@pytest.fixture(autouse=True)
def _free_slots() -> None:
    """Contexts of earlier tests (this module's or another's) give their slots back once
    collected: a callback and its ctypes thunk are a cycle, so only the collector frees it."""
    gc.collect()


def _held(obj: object) -> TicketCallback:
    assert isinstance(obj, TicketCallback)
    return obj


def _not_the_wall_clock() -> float:
    """The real time, but not ``time.time`` itself: the schedule's keys are the same, and C
    is never handed one (the schedule cannot tell this clock's intervals)."""
    return time.time()


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: Python alone here")
def test_the_extension_is_built_here() -> None:
    # make test installs it (pyproject's ext-modules, optional); where a compiler is there,
    # a missing extension is a broken build, not the fallback
    assert libssl.BRIDGE is not None and libssl.BRIDGE.tickets is not None
    assert libssl.BRIDGE.tickets.native is not None


def test_after_the_first_ticket_c_issues_them(pair: tuple[Path, Path]) -> None:
    ctx, held = server(*pair, TicketKeys(SECRET, 3600))
    callback = _held(held)
    assert callback.slot is not None
    sessions = [handshake(ctx) for _ in range(3)]  # two tickets each
    assert callback.python_encrypts == 1  # the first one, which handed C the key
    # C's tickets open on a context whose every ticket is Python's (same secret and epoch)
    python_only, _kept = server(*pair, TicketKeys(SECRET, 3600, clock=_not_the_wall_clock))
    for session in sessions:
        assert session is not None and session.has_ticket
        assert handshake(python_only, session) is not None
    # ... and on their own context, which does not hand them out again
    assert handshake(ctx, sessions[-1]) is not None


def test_a_schedule_off_the_wall_clock_asks_python_for_every_ticket(
        pair: tuple[Path, Path]) -> None:
    ctx, held = server(*pair, TicketKeys(SECRET, 3600, clock=_not_the_wall_clock))
    callback = _held(held)
    assert callback.slot is None  # C could never use one
    for _ in range(2):
        assert handshake(ctx) is not None
    assert callback.python_encrypts == 4


def test_once_the_epoch_ends_python_gives_c_the_next_key(pair: tuple[Path, Path]) -> None:
    period = 1.0
    keys = TicketKeys(SECRET, period)
    ctx, held = server(*pair, keys)
    callback = _held(held)
    assert callback.slot is not None
    time.sleep(period - time.time() % period + 0.01)  # the start of an epoch
    first = handshake(ctx)
    assert callback.python_encrypts == 1
    time.sleep(period - time.time() % period + 0.01)  # the next one
    again = handshake(ctx)
    assert callback.python_encrypts == 2
    # the new key opens the new ticket elsewhere; the old one is still accepted (previous)
    other, _kept = server(*pair, TicketKeys(SECRET, period, clock=_not_the_wall_clock))
    assert handshake(other, again) is not None
    assert handshake(other, first) is not None


def test_without_a_slot_every_ticket_asks_python(pair: tuple[Path, Path]) -> None:
    held: list[tuple[ssl.SSLContext, TicketCallback]] = []
    for _ in range(12):  # eight slots: the ninth context has none
        ctx, callback = server(*pair, TicketKeys(SECRET, 3600))
        held.append((ctx, _held(callback)))
    assert [c.slot for _, c in held][8:] == [None] * 4
    ctx, last = held[-1]
    session = handshake(ctx)
    assert last.python_encrypts == 2
    assert handshake(ctx, session) is not None
    slots = {c.slot for _, c in held[:8]}
    del ctx, last, callback
    held.clear()
    gc.collect()  # freed contexts free their slots
    _ctx, again = server(*pair, TicketKeys(SECRET, 3600))
    assert _held(again).slot in slots


def test_a_context_keeps_its_slot_while_it_lives(pair: tuple[Path, Path]) -> None:
    ctx, held = server(*pair, TicketKeys(SECRET, 3600))
    slot = _held(held).slot
    assert slot is not None
    del held
    gc.collect()  # the context holds the callback: the slot is not given to another
    _other, second = server(*pair, TicketKeys(bytes(32), 3600))
    assert _held(second).slot not in (slot, None)
    assert handshake(ctx) is not None


def test_without_the_extension_python_issues_every_ticket(
        pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    bridge = libssl.BRIDGE
    assert bridge is not None and bridge.tickets is not None
    monkeypatch.setattr(libssl, "BRIDGE", dataclasses.replace(
        bridge, tickets=dataclasses.replace(bridge.tickets, native=None)))
    ctx, held = server(*pair, TicketKeys(SECRET, 3600))
    callback = _held(held)
    assert callback.slot is None
    session = handshake(ctx)
    assert handshake(ctx, session) is not None
    assert callback.python_encrypts == 3  # two in a full handshake, one in a resumed one
