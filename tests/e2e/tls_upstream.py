"""An HTTPS upstream for the upstream-TLS tests, run as its own process:

    python -m tests.e2e.tls_upstream PORT CERT_CHAIN KEY [CLIENT_CA]

A threaded server on blocking ``ssl`` sockets: unlike asyncio servers it sends the TLS alert
when it rejects a client (``certificate required``, ``unknown ca``). With CLIENT_CA a client
certificate signed by it is required. Every answer is JSON: the client certificate's CN, the
SNI the client sent, the Host header and the client's port (to see connection reuse).
"""

from __future__ import annotations

import json
import os
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        conn: Any = self.connection
        cert = conn.getpeercert() or {}
        cn = next((v for rdn in cert.get("subject", ()) for k, v in rdn
                   if k == "commonName"), None)
        body = json.dumps({"client_cn": cn, "sni": getattr(conn, "sni", None),
                           "host": self.headers.get("Host"),
                           "peer_port": self.client_address[1],
                           "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def main() -> None:
    port, chain, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain, key)
    if os.environ.get("TLS_UPSTREAM_MAX") == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if os.environ.get("TLS_UPSTREAM_GROUP"):
        ctx.set_ecdh_curve(os.environ["TLS_UPSTREAM_GROUP"])  # OpenSSL 3: TLS 1.3 groups too
    if os.environ.get("TLS_UPSTREAM_CIPHERS"):
        ctx.set_ciphers(os.environ["TLS_UPSTREAM_CIPHERS"])
    if len(sys.argv) > 4:
        ctx.load_verify_locations(sys.argv[4])
        ctx.verify_mode = ssl.CERT_REQUIRED

    def remember_sni(obj: Any, name: str | None, _ctx: Any) -> None:
        obj.sni = name

    ctx.sni_callback = remember_sni
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
