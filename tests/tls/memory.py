"""TLS handshakes over memory BIOs between a server context and a client: the session
ticket tests' two processes in one."""

from __future__ import annotations

import functools
import ssl
from pathlib import Path

from gateway.tls import tickets
from gateway.tls.tickets import TicketKeys


def server(cert: Path, key: Path, keys: TicketKeys | None,
           refuse: str | None = None) -> tuple[ssl.SSLContext, object]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    held = tickets.install(ctx, keys, lambda name: name == refuse) if keys else None
    return ctx, held


@functools.cache
def client(version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3) -> ssl.SSLContext:
    """One client context per version: Python resumes a session only with the context
    that made it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.maximum_version = version
    return ctx


def handshake(server_ctx: ssl.SSLContext, session: ssl.SSLSession | None = None,
              name: str = "a.test", version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
              ) -> ssl.SSLSession | None:
    """One connection over memory BIOs; returns the session once a ticket arrived, or None
    when the given session was not resumed."""
    client_ctx = client(version)
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client_ctx.wrap_bio(c_in, c_out, server_hostname=name, session=session)
    s = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done: set[object] = set()
    for _ in range(10):  # bounded: a TLS 1.3 handshake takes a few flights
        for obj in (c, s):
            try:
                obj.do_handshake()
                done.add(obj)
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if len(done) == 2:
            break
    c.write(b"x")  # tickets travel after the handshake: let the client read them
    s_in.write(c_out.read())
    s.read(1)
    s.write(b"y")
    c_in.write(s_out.read())
    c.read(1)
    if session is not None and not c.session_reused:
        return None
    return c.session
