"""Memory per idle keep-alive TLS client connection of a running node.

Opens N TLS connections (default 10,000) to a node's proxy listener, makes one request on
each and leaves them open and idle, then reads the node's RSS: (RSS with N idle connections
- RSS before) / N, in KB. What a connection did before it went idle matters (OpenSSL's record
buffers are only touched, so only resident, as far as records filled them): ``--body 32768``
posts a body of full records, a URL with a large response writes full records. Bounded in
time: gives up (and reports what it has) after ``--deadline`` seconds.

    bench/idle.py --pid $(pgrep -f 'ramparts start') --url https://127.0.0.1:8443/some/route

The node must keep the connections longer than the run takes
(``nginx_http_keepalive_timeout 600s``) and allow them (``nginx_events_worker_connections``,
which by default follows the node's ``ulimit -n`` at start). The script raises its own
RLIMIT_NOFILE, and the node's (``prlimit``), to their hard limits.
"""

from __future__ import annotations

import argparse
import resource
import select
import socket
import ssl
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def raise_nofile(pid: int | None, wanted: int) -> int:
    """Soft limit up to the hard one (ours, or the node's); returns the soft limit."""
    soft, hard = resource.prlimit(pid or 0, resource.RLIMIT_NOFILE)
    if soft < wanted and soft != hard:
        resource.prlimit(pid or 0, resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return int(soft)


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def one(host: str, port: int, request: bytes, context: ssl.SSLContext) -> ssl.SSLSocket:
    """A connection that made one keep-alive request and read the whole answer."""
    sock = context.wrap_socket(socket.create_connection((host, port), timeout=30),
                               server_hostname=host)
    try:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            more = sock.recv(65536)
            if not more or len(data) > 65536:
                raise ConnectionError("no response head")
            data += more
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(body) < length:
            more = sock.recv(65536)
            if not more:
                raise ConnectionError("closed in the response body")
            body += more
    except BaseException:
        sock.close()
        raise
    return sock


def open_many(url: str, count: int, parallel: int, deadline: float, body: int = 0
              ) -> tuple[list[ssl.SSLSocket], int]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    head = f"{'POST' if body else 'GET'} {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}"
    request = (f"{head}\r\nContent-Length: {body}\r\n\r\n" if body else
               f"{head}\r\n\r\n").encode() + b"x" * body
    context = client_context()
    errors: list[str] = []

    def attempt(_: int) -> ssl.SSLSocket | None:
        if time.monotonic() > deadline:
            return None
        try:
            return one(host, port, request, context)
        except (OSError, ValueError) as exc:
            errors.append(str(exc))
            return None

    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(attempt, range(count)))
    held = [s for s in results if s is not None]
    if errors:
        print(f"{len(errors)} connections failed, the first with: {errors[0]}")
    return held, count - len(held)


def still_open(sock: ssl.SSLSocket) -> bool:
    """Nothing to read and no EOF: the node kept the connection."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return not poller.poll(0)


def measure(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.deadline
    while not open_many(args.url, 1, 1, deadline)[0]:  # the node is still starting
        if time.monotonic() > deadline:
            return 1
        time.sleep(1)
    warm, _ = open_many(args.url, 100, args.parallel, deadline, args.body)  # lazy state
    for sock in warm:
        sock.close()
    time.sleep(2)
    before = rss_kb(args.pid)
    started = time.monotonic()
    held, failed = open_many(args.url, args.connections, args.parallel, deadline, args.body)
    took = time.monotonic() - started
    time.sleep(args.settle)
    after = rss_kb(args.pid)
    alive = sum(1 for s in held if still_open(s))
    print(f"{len(held)} idle TLS connections opened in {took:.0f} s ({failed} failed, "
          f"{alive} still open {args.settle:g} s later)")
    print(f"node RSS: {before / 1024:.1f} MB before, {after / 1024:.1f} MB with them open")
    if held:
        print(f"{(after - before) / len(held):.1f} KB per idle keep-alive TLS connection")
    for sock in held:
        sock.close()
    return 0 if held and not failed and alive == len(held) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pid", type=int, required=True, help="the node's process id")
    parser.add_argument("--url", required=True, help="an https URL the node answers")
    parser.add_argument("-n", "--connections", type=int, default=10_000)
    parser.add_argument("--body", type=int, default=0,
                        help="POST a body of this many bytes instead of a GET")
    parser.add_argument("--parallel", type=int, default=8, help="handshakes at once")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before reading RSS")
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds at most")
    args = parser.parse_args()
    wanted = args.connections + 200
    for pid in (None, args.pid):
        if raise_nofile(pid, wanted) < wanted:
            print(f"RLIMIT_NOFILE of {'this script' if pid is None else 'the node'} is below "
                  f"{wanted}", file=sys.stderr)
            return 2
    return measure(args)


if __name__ == "__main__":
    sys.exit(main())
