"""Our TLS layer under the downstream connection, on a real socket with real handshakes:
pipelined requests answered in order (decrypted input held while the connection is paused),
bodies larger than the socket's reads, close_notify on close, the connection's TLS facts, the
alert of a failed handshake; and the pure parts (OpenSSL's reason, the SNI of a ClientHello,
the rate-limited log)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.errors_proxy import Reply
from gateway.proxy.body import RequestBody
from gateway.proxy.connection import Downstream, Limits
from gateway.proxy.http1 import RequestHead
from gateway.proxy.listeners import DataPlane
from gateway.proxy.tls import FailureLog, client_hello_sni, reason_of
from gateway.server import bind
from gateway.settings.listen import Listener
from gateway.stats import ServerStats
from tests.e2e.proc import free_port
from tests.proxy.test_connection import echo


def server_context(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    return ctx


async def facts(conn: Downstream, head: RequestHead, body: RequestBody | None) -> None:
    """``/facts`` answers ``<scheme> <TLS version>``; the rest is test_connection's echo."""
    if head.target != b"/facts":
        return await echo(conn, head, body)
    tls = conn.tls or {}
    text = b"%s %d" % (conn.scheme.encode(), tls.get("tls_version") or 0)
    conn.reply(Reply(200, [(b"content-type", b"text/plain")], text), head)
    return None


@pytest_asyncio.fixture
async def port(tmp_path: Path) -> AsyncIterator[int]:
    number = free_port()
    sock = bind(Listener(host="127.0.0.1", port=number))
    plane = DataPlane(facts, ServerStats(), Limits(client_header_timeout=5))
    await plane.serve([(sock, 16)], server_context(tmp_path))
    yield number
    await plane.stop(grace=1)
    sock.close()


def exchange(port: int, data: bytes, until: bytes, reads: int = 1) -> tuple[bytes, bytes]:
    """Sends ``data`` in one write, reads until ``until`` was seen ``reads`` times, then
    asks for the close; returns the bytes read and what came after ``Connection: close``
    (b"" only after the server's close_notify: ragged EOFs are errors here)."""
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    with client.wrap_socket(raw, suppress_ragged_eofs=False) as tls:
        tls.sendall(data)
        got = b""
        while got.count(until) < reads:
            more = tls.recv(65536)
            assert more, got
            got += more
        tls.sendall(b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        tail = b""
        while more := tls.recv(65536):  # SSLEOFError without close_notify
            tail += more
        return got, tail


async def test_pipelined_requests_in_one_record_are_answered_in_order(port: int) -> None:
    pipelined = b"".join(b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % name
                         for name in (b"slow", b"a", b"facts", b"b"))
    got, tail = await asyncio.to_thread(exchange, port, pipelined, b"HTTP/1.1 200", 4)
    assert re.findall(rb"GET /\w+ \d+|https \d+", got) == [
        b"GET /slow 0", b"GET /a 0", b"https 772", b"GET /b 0"]
    assert tail.endswith(b"GET /last 0")


def close_notify_answered_in(port: int) -> float:
    """One request, then the client's close_notify with TCP left open: seconds until the
    server's own close_notify came back."""
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    with client.wrap_socket(raw, suppress_ragged_eofs=False) as tls:
        tls.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while b"GET /a 0" not in got:
            more = tls.recv(65536)
            assert more, got
            got += more
        started = time.monotonic()
        tls.unwrap().close()
        return time.monotonic() - started


async def test_a_client_close_notify_closes_the_connection(port: int) -> None:
    # the keep-alive timeout is 60 s: only the close_notify can end this connection sooner
    assert await asyncio.to_thread(close_notify_answered_in, port) < 15


async def test_a_body_larger_than_many_records_arrives_whole(port: int) -> None:
    size = 8 * 1024 * 1024 + 5
    request = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size
    got, _ = await asyncio.to_thread(exchange, port, request + b"x" * size, b"/up %d" % size)
    assert got.endswith(b"POST /up %d" % size)


async def test_a_tls12_client_gets_the_protocol_version_alert(tmp_path: Path) -> None:
    number = free_port()
    sock = bind(Listener(host="127.0.0.1", port=number))
    stats = ServerStats()
    context = server_context(tmp_path)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    plane = DataPlane(facts, stats, Limits())
    await plane.serve([(sock, 16)], context)
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    client.maximum_version = ssl.TLSVersion.TLSv1_2

    def connect() -> str:
        raw = socket.create_connection(("127.0.0.1", number), timeout=20)
        try:
            client.wrap_socket(raw).close()
        except ssl.SSLError as exc:
            return str(exc)
        finally:
            raw.close()
        return "no error"

    try:
        assert "TLSV1_ALERT_PROTOCOL_VERSION" in await asyncio.to_thread(connect)
        assert stats.tls_handshakes_failed == 1
    finally:
        await plane.stop(grace=1)
        sock.close()


def handshake_error(server: ssl.SSLContext, client: ssl.SSLContext) -> ssl.SSLError:
    """Runs a handshake in memory; returns the server's error."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        with contextlib.suppress(ssl.SSLWantReadError):
            c.do_handshake()
        s_in.write(c_out.read())
        try:
            s.do_handshake()
        except ssl.SSLWantReadError:
            c_in.write(s_out.read())
            continue
        except ssl.SSLError as exc:
            return exc
    raise AssertionError("the handshake did not fail")


@pytest.mark.parametrize(("client_settings", "reason"), [
    ({"maximum_version": ssl.TLSVersion.TLSv1_2}, "unsupported protocol"),
])
def test_reason_of_is_openssls_reason_string(tmp_path: Path, client_settings: dict[str, object],
                                             reason: str) -> None:
    server = server_context(tmp_path)
    server.minimum_version = ssl.TLSVersion.TLSv1_3
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    for name, value in client_settings.items():
        setattr(client, name, value)
    assert reason_of(handshake_error(server, client)) == reason


def test_the_failure_log_says_once_per_interval_and_counts_the_rest(
        caplog: pytest.LogCaptureFixture) -> None:
    failures = FailureLog(interval=10)
    with caplog.at_level(logging.INFO, logger="ramparts.proxy"):
        steps = [failures.failed("no shared cipher", "127.0.0.1:1", None, now=100.0),
                 failures.failed("no shared cipher", "127.0.0.1:2", None, now=101.0),
                 failures.failed("unsupported protocol", "[::1]:3", "a.test", now=102.0),
                 failures.failed("no shared cipher", "127.0.0.1:4", None, now=105.0),
                 failures.failed("no shared cipher", "127.0.0.1:5", "b.test", now=110.5)]
    assert steps == [True, False, True, False, True]
    assert [r.getMessage() for r in caplog.records] == [
        "TLS handshake failed: no shared cipher; client: 127.0.0.1:1",
        "TLS handshake failed: unsupported protocol; client: [::1]:3, server name: a.test",
        "TLS handshake failed: no shared cipher; client: 127.0.0.1:5, server name: b.test "
        "(2 more with this reason in the last 10 s were not logged)"]
    assert all(r.levelno == logging.INFO for r in caplog.records)


def client_hello(server_name: str | None) -> bytes:
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    obj = client.wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


@pytest.mark.parametrize(("data", "sni"), [
    (client_hello("old.test"), "old.test"),
    (client_hello(None), None),
    (client_hello("old.test")[:60], None),  # cut before the extensions
    (b"GET / HTTP/1.1\r\n\r\n", None),
    (b"", None),
], ids=["sni", "no-sni", "cut", "http", "empty"])  # fixed ids: the hellos are random (xdist)
def test_client_hello_sni(data: bytes, sni: str | None) -> None:
    assert client_hello_sni(memoryview(data)) == sni
