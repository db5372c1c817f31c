"""nginx configurations of bench/extra.py: the origin, and nginx as the reference proxy.

Set up as the shared harness sets nginx up (one worker unless told, keep-alive pools to the
origin, access log off, TLS 1.2 and 1.3), written here rather than copied from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

_TEMPS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def _http(run: Path, name: str, workers: int, body: str) -> str:
    temps = "\n".join(f"    {t}_temp_path {run}/tmp-{name}-{t};" for t in _TEMPS)
    # workers as root: the idle scenario's client reads and raises the worker's limits
    return f"""user root;
worker_processes {workers};
daemon off;
pid {run}/{name}.pid;
worker_rlimit_nofile 65535;
events {{ worker_connections 16384; multi_accept on; }}
http {{
    access_log off;
    default_type text/plain;
    keepalive_requests 10000000;
    keepalive_timeout 600s;  # idle connections outlive the idle scenario
    ssl_protocols TLSv1.2 TLSv1.3;
{temps}
{body}
}}
"""


def origin_conf(run: Path, port: int, tls_port: int, pki: Path) -> str:
    """The origin: `200 ok` on every path, plain HTTP on `port`; on `tls_port` HTTPS that
    requires a client certificate of the bench's CA (the harness's scenario d)."""
    tls = server(tls_port, pki, f"""ssl_verify_client on;
        ssl_client_certificate {pki}/ca.crt;
        location / {{ return 200 "ok"; }}""")
    return _http(run, "origin", 1, f"""    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ return 200 "ok"; }}
    }}
{tls}""")


def server(port: int, pki: Path, body: str) -> str:
    """A TLS server block with the bench's server certificate (ECDSA P-256, CN localhost)."""
    return f"""    server {{
        listen 127.0.0.1:{port} ssl backlog=4096;
        ssl_certificate {pki}/server.crt;
        ssl_certificate_key {pki}/server.key;
        {body}
    }}"""


def proxy_conf(run: Path, name: str, origin: int, servers: Sequence[str], workers: int = 1
               ) -> str:
    """nginx proxying to the origin through a keep-alive pool `up`."""
    return _http(run, name, workers, "\n".join([
        f"    upstream up {{ server 127.0.0.1:{origin}; keepalive 128; "
        "keepalive_requests 10000000; }",
        "    proxy_http_version 1.1;",
        '    proxy_set_header Connection "";',
        *servers]))


def pass_all() -> str:
    return "location / { proxy_pass http://up; }"


def verify_client(ca: Path) -> str:
    """Client certificates checked as an authentication: nginx asks for one (optional, so
    the handshake completes) and answers 401 unless it verified against `ca`, as mtls-auth."""
    return f"""ssl_verify_client optional;
        ssl_client_certificate {ca};
        ssl_verify_depth 2;
        location / {{
            if ($ssl_client_verify != SUCCESS) {{ return 401; }}
            proxy_pass http://up;
        }}"""


def locations(indexes: Iterable[int]) -> str:
    """Prefix locations `/rNNNN/`, the prefix stripped (as Kong's `strip_path`)."""
    return "\n".join(f"        location /r{i:04d}/ {{ proxy_pass http://up/; }}" for i in indexes)
