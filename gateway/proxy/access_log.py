"""The proxy's access log: one line per request, nginx's ``combined`` format with Kong's
request id and the client-certificate verdict appended (or one JSON object per line), written
by a thread so a slow disk never blocks the event loop. The thread formats and writes what
has queued up, then naps ``FLUSH_INTERVAL``: under load the loop's ``put`` never has a
waiting thread to wake (a wake-up and a GIL hand-off per request cost more than formatting
the line), and an idle log still writes at once."""

from __future__ import annotations

import functools
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

FLUSH_INTERVAL = 0.05  # seconds: nginx's ``access_log ... flush=`` in spirit, much shorter
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
           "Dec")


@dataclass(slots=True)  # made per request: not frozen, whose __init__ is slower
class Entry:
    # the data plane makes one per request by position (a class called with keywords
    # gets them in a dict): the fields' order is part of its interface
    client_ip: str
    when: float          # time.time() when the request arrived
    method: str
    target: str          # as sent (path and query)
    version: str
    status: int
    sent: int            # body bytes sent to the client
    referer: str | None
    user_agent: str | None
    request_id: str
    latency_ms: int
    # nginx's $ssl_client_verify, as mtls-auth overrides it (issue 11): SUCCESS, NONE or
    # FAILED:<reason>; None on plain HTTP (nginx logs "-" there)
    client_verify: str | None = None


def _escaped(value: str | None, empty: str = "-") -> str:
    """A quoted field's text (the quotes are the line's): ``empty`` when empty, else escaped
    where it must be; a clean value is returned as it is, so no string is made for it."""
    if not value:
        return empty
    if '"' not in value and "\\" not in value:
        return value
    return value.replace("\\", "\\\\").replace('"', '\\"')


def local_time(when: float) -> str:
    """nginx's ``$time_local`` (UTC): ``06/Dec/2026:05:00:00 +0000``; one per second."""
    second = int(when)
    cached, text = _last_time[0]
    if cached == second:
        return text
    t = time.gmtime(second)
    text = (f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000")
    _last_time[0] = (second, text)
    return text


_last_time: list[tuple[int, str]] = [(-1, "")]


def combined(e: Entry) -> str:
    """``$remote_addr - - [$time_local] "$request" $status $body_bytes_sent
    "$http_referer" "$http_user_agent"`` plus the request id and ``$ssl_client_verify``,
    quoted. One string is built: the quotes are the template's, and ``$request`` is escaped
    through its target alone (the method and the version are the parser's tokens)."""
    return (f'{e.client_ip} - - [{local_time(e.when)}] '
            f'"{e.method} {_escaped(e.target, "")} HTTP/{e.version}" {e.status} {e.sent} '
            f'"{_escaped(e.referer)}" "{_escaped(e.user_agent)}" "{e.request_id}" '
            f'"{_escaped(e.client_verify)}"')  # the request id is ours: hex digits


def as_json(e: Entry, worker: int | None = None) -> str:
    """Kong's serializer's names; ``worker`` (beyond Kong) is the pid of the worker process
    that served the request, so an operator can tell the node's workers apart."""
    request: dict[str, object] = {"method": e.method, "uri": e.target,
                                  "http_version": e.version, "referer": e.referer,
                                  "user_agent": e.user_agent}
    if e.client_verify is not None:  # Kong's serializer: request.tls.client_verify
        request["tls"] = {"client_verify": e.client_verify}
    return json.dumps({"client_ip": e.client_ip, "started_at": int(e.when * 1000),
                       "request": request,
                       "response": {"status": e.status, "size": e.sent},
                       "latencies": {"request": e.latency_ms},
                       "request_id": e.request_id,
                       **({"worker": worker} if worker is not None else {})},
                      separators=(",", ":"))


FORMATS: dict[str, Callable[[Entry], str]] = {"combined": combined, "json": as_json}


class AccessLog:
    """Entries are queued by the loop; one daemon thread formats and writes them (the
    loop's share of a request's line is one ``put``)."""

    def __init__(self, stream: TextIO, fmt: str = "combined", worker: int | None = None
                 ) -> None:
        self.stream = stream
        self.format: Callable[[Entry], str] = FORMATS[fmt] if fmt != "json" or worker is None \
            else functools.partial(as_json, worker=worker)
        self._queue: queue.SimpleQueue[Entry | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="access-log", daemon=True)
        self._thread.start()

    def __call__(self, entry: Entry) -> None:
        self._queue.put(entry)

    def _write(self) -> None:
        while True:
            entry = self._queue.get()
            if entry is None:
                break
            lines = [self.format(entry)]
            while not self._queue.empty():  # a burst goes out in one write
                more = self._queue.get()
                if more is None:
                    self._flush(lines)
                    return
                lines.append(self.format(more))
            self._flush(lines)
            time.sleep(FLUSH_INTERVAL)  # entries queue up meanwhile, waking nobody

    def _flush(self, lines: list[str]) -> None:
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
        self.stream.close()
