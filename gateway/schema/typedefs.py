"""Kong's typedefs (``kong/db/schema/typedefs.lua``): validators with Kong's exact messages.

Each validator takes an already type-checked value and returns an error message or None.
The host parser mirrors Kong's ``normalize_ip``: it classifies by shape (IPv6 when there is
more than one ``:``, IPv4 when only digits and dots remain) and never falls back.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from gateway.router.regex import regex_error
from gateway.schema.fields import Check, LenMax, Set, Unique, Uuid
from gateway.text import is_digits
from gateway.tls import pem

# --------------------------------------------------------------------------- host parser


class HostError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ParsedHost:
    kind: Literal["ipv4", "ipv6", "name"]
    host: str
    port: int | None


_NAME = re.compile(r"^[0-9A-Za-z._-]+$")
_IPV4 = re.compile(r"^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})(?::([0-9]+))?$")
_PORTED_NAME = re.compile(r"^(.*):([0-9]+)$")


def normalize_ip(text: str) -> ParsedHost:
    """Kong's ``normalize_ip``: raises ``HostError`` with Kong's message."""
    if text.count(":") > 1:
        return _ipv6(text)
    if re.fullmatch(r"[0-9.]+", text.replace(":", "")):
        return _ipv4(text)
    return _hostname(text)


def _port(value: str) -> int:
    port = int(value)
    if port > 65535:
        raise HostError("invalid port number")
    return port


def _ipv4(text: str) -> ParsedHost:
    match = _IPV4.match(text)
    if not match or any(int(o) > 255 for o in match.groups()[:4]):
        raise HostError(f"invalid ipv4 address: {text}")
    host = ".".join(str(int(o)) for o in match.groups()[:4])
    port = _port(match.group(5)) if match.group(5) is not None else None
    return ParsedHost("ipv4", host, port)


def _ipv6(text: str) -> ParsedHost:
    port: int | None = None
    addr = text
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise HostError(f"invalid ipv6 address: {text}")
        addr, rest = text[1:end], text[end + 1:]
        if rest:
            # isdecimal, not isdigit: '²' is a digit that int() refuses
            if not rest.startswith(":") or not rest[1:].isdecimal():
                raise HostError("invalid ipv6 address")
            port = _port(rest[1:])
    try:
        exploded = ipaddress.IPv6Address(addr).exploded
    except ValueError as exc:
        raise HostError(f"invalid ipv6 address: {text}") from exc
    return ParsedHost("ipv6", exploded.lower(), port)


def _hostname(text: str) -> ParsedHost:
    name, port = text, None
    match = _PORTED_NAME.match(text)
    if match:
        name, port = match.group(1), _port(match.group(2))
    if not _NAME.match(name):
        raise HostError(f"invalid hostname: {text}")
    labels = name.split(".")
    for i, label in enumerate(labels):
        if label.endswith("-") or (not label and i != len(labels) - 1):
            raise HostError(f"invalid hostname: {text}")
    return ParsedHost("name", name, port)


def format_host(parsed: ParsedHost, default_port: int | None = None) -> str:
    host = f"[{parsed.host}]" if parsed.kind == "ipv6" else parsed.host
    port = parsed.port if parsed.port is not None else default_port
    return host if port is None else f"{host}:{port}"


# --------------------------------------------------------------------------- hosts


def host(value: str) -> str | None:
    """``typedefs.host``: a hostname or IP, no port."""
    if re.search(r":[0-9]+$", value) and value.count(":") == 1:
        return "must not have a port"
    try:
        parsed = normalize_ip(value)
    except HostError as exc:
        return "must not have a port" if str(exc) == "invalid port number" \
            else f"invalid value: {value}"
    if parsed.port is not None:
        return "must not have a port"
    return None


def host_with_optional_port(value: str) -> str | None:
    try:
        normalize_ip(value)
    except HostError as exc:
        return str(exc)
    return None


def sni(value: str, shown: str | None = None) -> str | None:
    """``typedefs.sni``: a name only (no IP, no port)."""
    try:
        parsed = normalize_ip(value)
    except HostError as exc:
        if str(exc) == "invalid port number":
            return "must not have a port"
        return f"invalid value: {shown or value}"
    if parsed.kind != "name":
        return "must not be an IP"
    if parsed.port is not None:
        return "must not have a port"
    return None


def wildcard_host(value: str) -> str | None:
    """``typedefs.wildcard_host``: SNI names, ``*`` allowed as first or last character."""
    star = value.find("*")
    if star >= 0:
        if star not in (0, len(value) - 1):
            return "wildcard must be leftmost or rightmost character"
        if value.count("*") > 1:
            return "only one wildcard must be specified"
        substituted = value.replace("*", "wildcard")
        return sni(substituted, substituted)
    return sni(value)


def route_host(value: str) -> str | None:
    """An element of ``routes.hosts``: host[:port] with one leftmost/rightmost wildcard.
    (Counted, not matched: ``^[^*]*\\*?[^*]*$`` backtracks quadratically.)"""
    stars = value.count("*")
    if stars > 1:
        return "invalid wildcard: must have at most one wildcard"
    if stars and not (value.startswith("*.") or value.endswith(".*")):
        return "invalid wildcard: must be placed at leftmost or rightmost label"
    return host_with_optional_port(value.replace("*", "abc"))


def ip_or_cidr(value: str) -> str | None:
    try:
        if "/" in value:
            addr, _, prefix = value.partition("/")
            if not is_digits(prefix):
                raise ValueError(value)
            ipaddress.ip_network(f"{ipaddress.ip_address(addr)}/{prefix}", strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        return f"invalid ip or cidr range: '{value}'"
    return None


# --------------------------------------------------------------------------- paths

_PATH_CHARS = re.compile(r"^/[A-Za-z0-9.\-_~/%:@!$&'()*+,;=]*$")
_RESERVED = set("!#$%&'()*+,/:;=?@[]")


def _percent_error(value: str) -> str | None:
    for match in re.finditer(r"%", value):
        i = match.start()
        if not re.fullmatch(r"[0-9A-Fa-f]{2}", value[i + 1:i + 3]):
            return f"invalid url-encoded value: '{value[i:i + 3]}'"
    return None


def path(value: str) -> str | None:
    """``typedefs.path`` (service.path, health-check paths)."""
    if not value.startswith("/"):
        return "should start with: /"
    if "//" in value:
        return "must not have empty segments"
    if not _PATH_CHARS.match(value):
        return (f"invalid path: '{value}' (characters outside of the reserved list of "
                "RFC 3986 found)")
    return _percent_error(value)


def normalize_path(value: str) -> str:
    """Kong's router path normalisation: decode %XX of unreserved characters, upper-case the
    hex of reserved ones, remove dot segments."""
    out = bytearray()
    i = 0
    raw = value.encode("utf-8", "surrogateescape")
    while i < len(raw):
        ch = raw[i]
        if ch == 0x25 and re.fullmatch(rb"[0-9A-Fa-f]{2}", raw[i + 1:i + 3]):
            byte = int(raw[i + 1:i + 3], 16)
            if chr(byte) in _RESERVED:
                out += b"%" + raw[i + 1:i + 3].upper()
            else:
                out.append(byte)
            i += 3
            continue
        out.append(ch)
        i += 1
    return remove_dot_segments(out.decode("utf-8", "surrogateescape"))


def remove_dot_segments(value: str) -> str:
    """RFC 3986 section 5.2.4."""
    segments: list[str] = []
    parts = value.split("/")
    for i, seg in enumerate(parts):
        last = i == len(parts) - 1
        if seg == ".":
            if last:
                segments.append("")
            continue
        if seg == "..":
            if len(segments) > 1:
                segments.pop()
            if last:
                segments.append("")
            continue
        segments.append(seg)
    result = "/".join(segments)
    return result if result.startswith("/") else "/" + result


def router_path(value: str) -> str | None:
    """An element of ``routes.paths``: a normalised prefix, or ``~`` + a regex."""
    if "//" in value:
        return "must not have empty segments"
    if not (value.startswith("/") or value.startswith("~/")):
        return "should start with: / (fixed path) or ~/ (regex path)"
    if value.startswith("~"):
        # compiled by the router's own engine, so a stored regex can always be built
        return regex_error(value[1:])
    if _PATH_CHARS.match(value):
        err = _percent_error(value)
        if err:
            return err
    normalized = normalize_path(value)
    if normalized != value:
        return f"non-normalized path, consider use '{normalized}' instead"
    return None


# --------------------------------------------------------------------------- names, tags

_UTF8_NAME = re.compile(r"^[A-Za-z0-9.\-_~\u0080-\U0010ffff]+$")


def utf8_name(value: str) -> str | None:
    if not _UTF8_NAME.match(value):
        return (f"invalid value '{value}': the only accepted ascii characters are "
                "alphanumerics or ., -, _, and ~")
    return None


_TAG = re.compile(r"^[\x20-\x2b\x2d\x2e\x30-\x7e\u0080-\U0010ffff]+$")


def tag(value: str) -> str | None:
    if not _TAG.match(value):
        return (f"invalid tag '{value}': expected printable ascii (except `,` and `/`) "
                "or valid utf-8 sequences")
    return None


def http_method(value: str) -> str | None:
    return None if re.fullmatch(r"[A-Z]+", value) else f"invalid value: {value}"


def header_name(value: str) -> str | None:
    if re.fullmatch(r"[A-Za-z0-9_-]+", value):
        return None
    return f"bad header name '{value}', allowed characters are A-Z, a-z, 0-9, '_', and '-'"


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def header_value(value: str) -> str | None:
    """A header value sent upstream (health-check probes): no control characters but tab,
    which the HTTP client refuses at send time (or which would split the header)."""
    if _CONTROL.search(value):
        return "invalid header value: control characters are not allowed"
    return None


def route_header_value(value: str) -> str | None:
    """A ``routes.headers`` value: ``~*`` + a case-insensitive regex, else a plain value."""
    return regex_error(value[2:], ignore_case=True) if value.startswith("~*") else None


def route_header_name(value: str) -> str | None:
    if value.lower() == "host":
        return "cannot contain 'host' header, which must be specified in the 'hosts' attribute"
    return header_name(value)


def map_keys(check: Callable[[str], str | None]) -> Callable[[Mapping[str, Any]], str | None]:
    """A map validator from a key validator: the first bad key's message (as Kong reports)."""

    def validate(value: Mapping[str, Any]) -> str | None:
        return next((err for err in map(check, value) if err), None)

    return validate


def cookie_name(value: str) -> str | None:
    if re.search(r'[\x00-\x20\x7f()<>@,;:\\"/?={}\[\]]', value):
        return ("contains one or more invalid characters. ASCII control characters (0-31;127)"
                ", space, tab and the characters ()<>@,;:\\\"/?={}[] are not allowed.")
    return None


# --------------------------------------------------------------------------- PEM


def certificate(value: str) -> str | None:
    try:
        pem.load_certificates(value)
    except pem.PemError as exc:
        return f"invalid certificate: {exc}"
    return None


def key(value: str) -> str | None:
    try:
        pem.load_private_key(value)
    except pem.PemError as exc:
        return f"invalid key: {exc}"
    return None


# --------------------------------------------------------------------------- aliases

PROTOCOLS = ("grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp",
             "ws", "wss")
HTTP_PROTOCOLS = ("grpc", "grpcs", "http", "https")

Id = Annotated[str, Uuid()]
UuidStr = Annotated[str, Uuid()]
Tags = Annotated[tuple[Annotated[str, Check(tag)], ...] | None, Set()]
Utf8Name = Annotated[str | None, Check(utf8_name), Unique()]
WildcardHost = Annotated[str, Check(wildcard_host)]
# PEM is not indexed: a chain of a dozen certificates fits with room to spare
MAX_PEM = 64 * 1024
# a CRL lists every revoked serial (~40 bytes each): a large CA's runs to megabytes
MAX_CRL = 8 * 1024 * 1024
Certificate = Annotated[str, LenMax(MAX_PEM), Check(certificate)]
Key = Annotated[str, LenMax(MAX_PEM), Check(key)]
