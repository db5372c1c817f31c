"""The settings, declared once with the same schema machinery as the entities.

Kong's names where Kong has one; the server ``tls`` and upstream ``client_tls`` blocks use
exactly KrakenD's field names, types and defaults (seeds 000 and 001), so a KrakenD block can
be pasted in.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from gateway import keyring
from gateway.proxy import linger
from gateway.schema.checks import Custom, Issues
from gateway.schema.fields import AllowEmpty, Between, Check, OneOf, Secret
from gateway.settings import access, listen
from gateway.text import is_digits
from gateway.tls import pem, suites


def readable_file(path: str) -> str | None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        return f"cannot read file '{path}': {exc.strerror or exc}"
    return None


def read_pem(value: str) -> str:
    """A PEM setting is either the PEM itself or a path to it (Kong accepts both)."""
    if value.lstrip().startswith("-----BEGIN"):
        return value
    with open(value, encoding="utf-8") as fh:
        return fh.read()


def _pem_check(kind: str) -> Check:
    def check(value: str) -> str | None:
        if not value.lstrip().startswith("-----BEGIN"):
            err = readable_file(value)
            if err:
                return err
        try:
            text = read_pem(value)
            if kind == "certificate":
                pem.load_certificates(text)
            else:
                pem.load_private_key(text)
        except (OSError, UnicodeDecodeError) as exc:
            return f"cannot read file '{value}': {exc}"
        except pem.PemError as exc:
            return f"invalid {kind} in '{_short(value)}': {exc}"
        return None

    return Check(check)


def _short(value: str) -> str:
    return "<inline PEM>" if value.lstrip().startswith("-----BEGIN") else value


def _trusted(value: str) -> str | None:
    return None if value == "system" else _pem_check("certificate").fn(value)


def _directory(value: str) -> str | None:
    return None if os.path.isdir(value) else f"'{value}' is not a directory"


def _database(value: str) -> str | None:
    if value == "off":
        return None  # DB-less: the configuration comes from declarative_config
    scheme = value.split(":", 1)[0].lower()
    if scheme in ("sqlite", "postgres", "postgresql") and "://" in value:
        return None
    return ("expected a database URL: 'sqlite:///path/to/file.db' or "
            "'postgresql://user@host:port/database' (or 'off': DB-less)")


def _ip(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"expected an IP address, got '{value}'"
    return None


def _size(value: str) -> str | None:
    return None if parse_size(value) is not None else "expected a size such as 10m, 512k or 1g"


def parse_size(value: str) -> int | None:
    text = value.strip().lower()
    factor = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in "kmg" else text
    return int(digits) * factor if is_digits(digits) else None


def parse_time(value: str) -> float | None:
    """nginx's time syntax: ``60``, ``60s``, ``500ms``, ``2m``, ``1h``, ``1d`` -> seconds."""
    text = value.strip().lower()
    for unit, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0),
                         ("d", 86400.0)):
        if text.endswith(unit):
            text, scale = text[:-len(unit)], factor
            break
    else:
        scale = 1.0
    try:
        seconds = float(text) * scale
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def _time(value: str) -> str | None:
    return None if parse_time(value) is not None else "expected a time such as 60s, 500ms or 1m"


def parse_buffers(value: str) -> tuple[int, int] | None:
    """nginx's ``large_client_header_buffers number size`` (``4 8k``)."""
    parts = value.split()
    if len(parts) != 2 or not is_digits(parts[0]) or int(parts[0]) < 1:
        return None
    size = parse_size(parts[1])
    return (int(parts[0]), size) if size else None


def _buffers(value: str) -> str | None:
    return None if parse_buffers(value) is not None else "expected a number and a size: 4 8k"


def worker_connections(value: str) -> int | None:
    if value.strip() == "auto":
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return min(soft if soft > 0 else 16384, 16384)
    return int(value) if is_digits(value.strip()) and int(value) > 0 else None


def worker_count(value: str) -> int | None:
    """nginx's ``worker_processes``: a number (1 to 64), or ``auto`` (one per core)."""
    text = value.strip()
    if text == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    return int(text) if is_digits(text) and 1 <= int(text) <= 64 else None


def _workers(value: str) -> str | None:
    return None if worker_count(value) is not None else "expected 'auto' or a number from 1 to 64"


def _connections(value: str) -> str | None:
    return None if worker_connections(value) is not None else "expected 'auto' or a number"


HEADER_TOKENS = ("server_tokens", "latency_tokens", "Server", "Via", "X-Kong-Upstream-Latency",
                 "X-Kong-Proxy-Latency", "X-Kong-Response-Latency", "X-Kong-Request-Id", "off")


def _header_token(value: str) -> str | None:
    if value.lower() in {t.lower() for t in HEADER_TOKENS}:
        return None
    return f"invalid header: '{value}' (expected one of: {', '.join(HEADER_TOKENS)})"


def _upstream_token(value: str) -> str | None:
    if value.lower() in ("x-kong-request-id", "off"):
        return None
    return f"invalid header: '{value}' (expected X-Kong-Request-Id or off)"


def _suite(value: int) -> str | None:
    if value in suites.ALL_SUITES:
        return None
    return f"unknown cipher suite {value}; see the IANA numbers in seed 000"


def _tls_versions(values: Mapping[str, Any]) -> Issues:
    issues: Issues = []
    lo, hi = values.get("min_version"), values.get("max_version")
    if lo and hi and suites.version_rank(lo) > suites.version_rank(hi):
        issues.append(("min_version", f"must not be above max_version ({hi})"))
    chosen = values.get("cipher_suites") or ()
    if lo and suites.version_rank(lo) < suites.version_rank("TLS12") and \
            not any(s not in suites.TLS13_SUITES for s in chosen):
        issues.append(("cipher_suites", f"min_version {lo} needs cipher_suites listing the "
                       "pre-TLS 1.3 suites to offer"))
    return issues


TLS_VERSION = Annotated[str, OneOf(*suites.VERSIONS)]
CipherSuites = tuple[Annotated[int, Check(_suite)], ...]
Curves = tuple[Annotated[int, OneOf(*suites.CURVES)], ...]
PemPath = Annotated[str, _pem_check("certificate")]
KeyPath = Annotated[str, _pem_check("private key"), Secret()]
CAPaths = tuple[Annotated[str, _pem_check("certificate")], ...]
ListenEntries = tuple[Annotated[str, Check(listen.check)], ...]

VERSION_CHECK = Custom(("min_version", "max_version", "cipher_suites"), _tls_versions)


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSServer:
    """KrakenD's ``tls`` block (server side)."""

    __checks__ = (VERSION_CHECK,)

    public_key: PemPath | None = None
    private_key: KeyPath | None = None
    ca_certs: CAPaths = ()
    cipher_suites: CipherSuites = suites.DEFAULT_SUITES
    curve_preferences: Curves = suites.DEFAULT_CURVES
    disable_system_ca_pool: bool = False
    disabled: bool = False
    enable_mtls: bool = False
    min_version: TLS_VERSION = "TLS13"
    max_version: TLS_VERSION = "TLS13"
    prefer_server_cipher_suites: bool = False  # deprecated in KrakenD; accepted, no effect


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientCert:
    certificate: PemPath
    private_key: KeyPath


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSClient:
    """KrakenD's ``client_tls`` block (gateway -> upstream)."""

    __checks__ = (VERSION_CHECK,)

    allow_insecure_connections: bool = False
    ca_certs: CAPaths = ()
    cipher_suites: CipherSuites = suites.DEFAULT_SUITES
    client_certs: tuple[ClientCert, ...] = ()
    curve_preferences: Curves = suites.DEFAULT_CURVES
    disable_system_ca_pool: bool = False
    min_version: TLS_VERSION = "TLS13"
    max_version: TLS_VERSION = "TLS13"


def _pairs(cert_key: str, key_key: str) -> Custom:
    def check(values: Mapping[str, Any]) -> Issues:
        certs, keys = values.get(cert_key) or (), values.get(key_key) or ()
        if isinstance(certs, str):
            certs, keys = (certs,), ((keys,) if keys else ())
        if certs and not keys:
            return [(key_key, "must be specified")]
        if keys and not certs:
            return [(cert_key, "must be specified")]
        if len(certs) != len(keys):
            return [(None, f"{cert_key} was specified {len(certs)} times while {key_key} "
                           f"was specified {len(keys)} times")]
        for cert_value, key_value in zip(certs, keys, strict=True):
            try:
                leaf = pem.load_certificates(read_pem(cert_value))[0]
                if not pem.key_matches(leaf, pem.load_private_key(read_pem(key_value))):
                    return [(key_key, f"does not match the certificate "
                             f"'{_short(cert_value)}'")]
            except (OSError, pem.PemError):
                return []  # the field checks already report it
        return []

    return Custom((cert_key, key_key), check, always=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Every top-level key of ``ramparts.yaml`` (each overridable by ``RAMPARTS_<KEY>``)."""

    __checks__ = (_pairs("ssl_cert", "ssl_cert_key"),
                  _pairs("client_ssl_cert", "client_ssl_cert_key"),
                  _pairs("admin_ssl_cert", "admin_ssl_cert_key"),
                  Custom(("admin_listen", "admin_auth", "admin_ssl_client_ca",
                          "admin_client_roles"), access.access_check))

    database: Annotated[str, Check(_database), Secret()] = "sqlite:///ramparts.db"
    admin_listen: ListenEntries = ("127.0.0.1:8001",)
    proxy_listen: ListenEntries = ("0.0.0.0:8000", "0.0.0.0:8443 ssl")
    stream_listen: ListenEntries = ("off",)
    ssl_cert: tuple[PemPath, ...] = ()
    ssl_cert_key: tuple[KeyPath, ...] = ()
    client_ssl_cert: PemPath | None = None
    client_ssl_cert_key: KeyPath | None = None
    lua_ssl_trusted_certificate: tuple[Annotated[str, Check(_trusted)], ...] = ("system",)
    tls: TLSServer | None = None
    # TLS session resumption on the proxy listeners (gateway/tls/tickets.py): Kong's
    # on/off and session lifetime, and how often the ticket keys rotate (a ticket resumes
    # for one to two rotation periods, never beyond ssl_session_timeout)
    ssl_session_tickets: bool = True
    ssl_session_timeout: Annotated[str, Check(_time)] = "1d"
    ssl_session_ticket_rotation: Annotated[str, Check(_time)] = "1h"
    client_tls: TLSClient | None = None
    port: Annotated[int | None, Between(0, 65535)] = None  # KrakenD's listening port
    listen_ip: Annotated[str, Check(_ip)] = "0.0.0.0"  # KrakenD's: the address `port` binds
    log_level: Annotated[str, OneOf("debug", "info", "notice", "warn", "error", "crit")] = \
        "notice"
    plugins: tuple[str, ...] = ("bundled",)
    # where custom plugins (packages ramparts_plugins.<name>) are found before sys.path;
    # Kong's lua_package_path
    plugin_path: tuple[Annotated[str, Check(_directory)], ...] = ()
    admin_max_body_size: Annotated[str, Check(_size)] = "10m"
    prefix: str = ".ramparts"  # generated files (default certificates) live here
    health_path: Annotated[str, AllowEmpty()] = "/__health"  # KrakenD's; "" disables it
    db_update_frequency: Annotated[float, Between(0.01, 60)] = 0.1  # config poll (seconds)
    # certificates a proxy process keeps ready to serve (LRU: parsed key pairs set per
    # connection, or one SSL context each without the libssl bridge), and how many a reload
    # makes ready before it goes live; the others on their first handshake (README: Live
    # configuration, "Many certificates")
    ssl_context_cache_size: Annotated[int, Between(1, 10_000_000)] = 10_000
    ssl_context_eager: Annotated[int, Between(0, 10_000_000)] = 1000
    audit_log_retention: Annotated[int, Between(0, 36500)] = 30  # days; 0 keeps forever
    # Admin API access (checks in settings/access.py; enforced by admin/access.py, auth.py)
    admin_auth: Annotated[str, OneOf(*access.AUTH_MODES)] = "off"
    admin_gui_origin: tuple[Annotated[str, Check(access.origin)], ...] = ()
    admin_gui_url: tuple[Annotated[str, Check(access.gui_url)], ...] = ()  # Kong's; its origin
    admin_server_names: tuple[Annotated[str, Check(access.server_name)], ...] = ()
    admin_ssl_cert: tuple[PemPath, ...] = ()
    admin_ssl_cert_key: tuple[KeyPath, ...] = ()
    admin_ssl_client_ca: CAPaths = ()
    admin_client_roles: Mapping[str, Annotated[str, OneOf(*access.ROLES)]] | None = None
    # keys encrypted at rest: `id:base64key` lines (or RAMPARTS_KEYRING); a file that is
    # missing or unreadable stops the start, never a silent fall back to plaintext
    keyring_file: Annotated[str | None, Check(keyring.check_file)] = None
    admin_return_keys: bool = True  # false: GETs never return private keys (write-only)
    # the proxy's access log (Kong's name): a path relative to `prefix`, or "off"
    proxy_access_log: str = "logs/access.log"
    proxy_access_log_format: Annotated[str, OneOf("combined", "json")] = "combined"
    # limits of the proxy listeners: nginx's directives under Kong's `nginx_http_` injection
    nginx_http_client_header_timeout: Annotated[str, Check(_time)] = "60s"
    nginx_http_client_body_timeout: Annotated[str, Check(_time)] = "60s"
    nginx_http_keepalive_timeout: Annotated[str, Check(_time)] = "60s"
    nginx_http_send_timeout: Annotated[str, Check(_time)] = "60s"
    nginx_http_large_client_header_buffers: Annotated[str, Check(_buffers)] = "4 8k"
    # a request body at most (Kong's default 0: no limit); over it, 413
    nginx_http_client_max_body_size: Annotated[str, Check(_size)] = "0"
    # a connection answered while its client may still be sending (gateway/proxy/linger.py)
    nginx_http_lingering_close: Annotated[str, OneOf(*linger.MODES)] = linger.ON
    nginx_http_lingering_time: Annotated[str, Check(_time)] = "30s"
    nginx_http_lingering_timeout: Annotated[str, Check(_time)] = "5s"
    # an upstream response's head (status line and headers) at most: nginx's proxy_buffer_size
    # under Kong's `nginx_proxy_` injection (nginx's default: a page)
    nginx_proxy_proxy_buffer_size: Annotated[str, Check(_size)] = "4k"
    # Kong's: which of its own headers the gateway adds to responses and upstream requests
    headers: tuple[Annotated[str, Check(_header_token)], ...] = (
        "server_tokens", "latency_tokens", "X-Kong-Request-Id")
    headers_upstream: tuple[Annotated[str, Check(_upstream_token)], ...] = (
        "X-Kong-Request-Id",)
    # client connections the proxy holds at once: a number, or "auto" (the open-file limit,
    # at most 16384, as Kong's default); more are closed as they arrive
    nginx_events_worker_connections: Annotated[str, Check(_connections)] = "auto"
    # cluster (gateway/cluster.py): heartbeat period, how long a silent node still counts as
    # live in /status/cluster, and LISTEN/NOTIFY (off: polling alone, for tests)
    cluster_heartbeat: Annotated[float, Between(0.1, 60)] = 1.0
    cluster_node_ttl: Annotated[float, Between(1, 3600)] = 5.0
    db_notifications: bool = True
    # the last-good snapshot cache (gateway/snapcache.py): a file path; needs a keyring
    snapshot_cache: str | None = None
    # a read replica (Kong's pg_ro_*): reloaders read it, the Admin API writes the primary;
    # a replica behind the primary's version is waited for at most database_ro_wait seconds
    database_ro: Annotated[str | None, Check(_database), Secret()] = None
    database_ro_wait: Annotated[float, Between(0, 30)] = 1.0
    # DB-less (`database: off`): the configuration a node starts with (a kong.yml path or the
    # text itself); POST /config replaces it
    declarative_config: str | None = None
    declarative_config_string: Annotated[str | None, Secret()] = None
    # processes (admin/supervisor.py): proxy worker processes (nginx's worker_processes;
    # `auto`: one per core), and how long SIGTERM waits for requests in flight before it
    # closes what is left (long-lived streams included)
    workers: Annotated[str, Check(_workers)] = "1"
    drain_timeout: Annotated[str, Check(_time)] = "30s"

    @property
    def dbless(self) -> bool:
        return self.database == "off"

    @property
    def admin_listeners(self) -> tuple[listen.Listener, ...]:
        return listen.parse(self.admin_listen)

    @property
    def proxy_listeners(self) -> tuple[listen.Listener, ...]:
        """``proxy_listen``, unless KrakenD's ``port`` is set: then one listener on
        ``listen_ip:port``, TLS when a ``tls`` block is present. ``tls.disabled`` turns every
        listener into plain HTTP, as in KrakenD."""
        tls_off = self.tls is not None and self.tls.disabled
        if self.port is not None:
            host = f"[{self.listen_ip}]" if ":" in self.listen_ip else self.listen_ip
            return (listen.Listener(host=host, port=self.port,
                                    ssl=self.tls is not None and not tls_off),)
        listeners = listen.parse(self.proxy_listen)
        if tls_off:
            return tuple(dataclasses.replace(x, ssl=False) for x in listeners)
        return listeners

    @property
    def worker_processes(self) -> int:
        count = worker_count(self.workers)
        assert count is not None  # checked at load
        return count

    @property
    def drain_seconds(self) -> float:
        seconds = parse_time(self.drain_timeout)
        assert seconds is not None  # checked at load
        return seconds

    @property
    def admin_max_body_bytes(self) -> int:
        size = parse_size(self.admin_max_body_size)
        assert size is not None
        return size or 2**62  # 0 means no limit, as nginx's client_max_body_size 0


def cwd_path(path: str) -> str:
    """Relative paths in settings are relative to the working directory (as in KrakenD)."""
    return path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
