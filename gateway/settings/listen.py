"""Kong's listener syntax: ``"0.0.0.0:8000, 0.0.0.0:8443 ssl reuseport backlog=16384"``."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from gateway.text import is_digits

FORM = ("must be of form: [off] | <ip>:<port> [ssl] [http2] [proxy_protocol] [deferred] "
        "[bind] [reuseport] [backlog=N] [ipv6only=on|off] [so_keepalive=on|off|idle:intvl:cnt], "
        "[... next entry ...]")

_FLAGS = {"ssl", "http2", "proxy_protocol", "deferred", "bind", "reuseport", "udp"}
_HOST = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+|\*):([0-9]{1,5})$")


@dataclass(frozen=True, slots=True)
class Listener:
    host: str
    port: int
    ssl: bool = False
    http2: bool = False
    proxy_protocol: bool = False
    reuseport: bool = False
    deferred: bool = False
    bind: bool = False
    udp: bool = False
    backlog: int | None = None
    ipv6only: bool | None = None
    so_keepalive: str | None = None

    @property
    def bind_host(self) -> str:
        """The host to bind: brackets removed, ``*`` meaning every IPv4 address."""
        if self.host == "*":
            return "0.0.0.0"
        return self.host.strip("[]")

    @property
    def loopback(self) -> bool:
        """Only this machine can connect: a loopback address or ``localhost``. A wildcard or
        any other name counts as reachable from the network."""
        host = self.bind_host
        if host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        flags = [f for f in ("ssl", "http2", "proxy_protocol", "reuseport") if getattr(self, f)]
        return " ".join([f"{self.host}:{self.port}", *flags])


class ListenError(ValueError):
    pass


def parse_entry(entry: str) -> Listener:
    words = entry.split()
    if not words:
        raise ListenError(FORM)
    match = _HOST.match(words[0])
    if match is None:
        raise ListenError(FORM)
    host, port = match.group(1), int(match.group(2))
    if port > 65535:
        raise ListenError(FORM)
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError as exc:
            raise ListenError(FORM) from exc
    opts: dict[str, object] = {}
    for word in words[1:]:
        if word in _FLAGS:
            opts[word] = True
        elif word.startswith("backlog=") and is_digits(word[8:]):
            opts["backlog"] = int(word[8:])
        elif word in ("ipv6only=on", "ipv6only=off"):
            opts["ipv6only"] = word.endswith("on")
        elif word.startswith("so_keepalive="):
            opts["so_keepalive"] = word.split("=", 1)[1]
        else:
            raise ListenError(FORM)
    return Listener(host=host, port=port, **opts)  # type: ignore[arg-type]


def parse(value: str | tuple[str, ...] | list[str]) -> tuple[Listener, ...]:
    """Every listener of a setting; ``off`` (or nothing) is no listener."""
    entries = value.split(",") if isinstance(value, str) else list(value)
    entries = [e.strip() for e in entries if e.strip()]
    if entries == ["off"] or not entries:
        return ()
    return tuple(parse_entry(e) for e in entries)


def check(value: str) -> str | None:
    """A schema ``Check``: the error text for one entry, or None."""
    if value.strip() == "off":
        return None
    try:
        parse_entry(value)
    except ListenError as exc:
        return str(exc)
    return None
