"""Kong's HTTP router (``traditional_compatible`` flavour), pure and precompiled.

Each route is split like Kong splits it: one matcher per distinct plain-path length and one
for all its regex paths. Matchers are sorted once by Kong's priority (match weight, plain
hosts only, header count, regex, regex_priority, plain path length; ties to the larger route
id) and the first whose every configured field matches wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.router.paths import normalize, normalize_escapes
from gateway.router.regex import RouteRegex
from gateway.schema.entities.routes import RouteEntity
from gateway.schema.entities.services import ServiceEntity

HTTP_PROTOCOLS = frozenset({"http", "https", "grpc", "grpcs", "ws", "wss"})


@dataclass(slots=True)  # made per request: not frozen, whose __init__ is slower
class Request:
    """What the router looks at. ``headers`` maps lower-case names to their values."""

    # the data plane makes one per request by position (a class called with keywords
    # gets them in a dict): the fields' order is part of its interface
    method: str
    host: str
    port: int
    raw_path: str
    headers: Mapping[str, Sequence[str]]
    scheme: str = "http"
    sni: str | None = None


@dataclass(slots=True)  # made per request, like Request
class Match:
    """Shared by every request ``Router.find`` answers from its cache: read only, but for
    ``uri``, which the data plane fills in once (it depends only on the match and on the
    route's service, which belong to the same snapshot)."""

    route: RouteEntity
    service: ServiceEntity | None
    path: str  # the request path as matched (normalised)
    prefix: str  # the matched path text: stripped when strip_path
    captures: Mapping[str, str]
    uri: bytes | None = None  # the upstream URI without the query (Kong's upstream_uri)


class _Names:
    """Host or SNI patterns: exact names, ``*.suffix`` (ends-with) and ``prefix.*``."""

    __slots__ = ("exact", "prefixes", "suffixes")

    def __init__(self, names: Sequence[str]) -> None:
        self.exact = frozenset(n for n in names if "*" not in n)
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*"))
        self.prefixes = tuple(n[:-1] for n in names if n.endswith("*"))

    def match(self, name: str) -> bool:
        return (name in self.exact or name.endswith(self.suffixes)
                or name.startswith(self.prefixes))


class _Hosts:
    """Route ``hosts``: a ``:port`` entry also requires the listener port."""

    __slots__ = ("any_port", "by_port")

    def __init__(self, hosts: Sequence[str]) -> None:
        plain: list[str] = []
        ported: dict[int, list[str]] = {}
        for entry in hosts:
            host, port = _split_port(entry)
            (ported.setdefault(port, []) if port is not None else plain).append(host)
        self.any_port = _Names(plain)
        self.by_port = {port: _Names(names) for port, names in ported.items()}

    def match(self, host: str, port: int) -> bool:
        if self.any_port.match(host):
            return True
        names = self.by_port.get(port)
        return names is not None and names.match(host)


def _split_port(value: str) -> tuple[str, int | None]:
    # IPv6 literals keep their brackets: the request's Host header carries them
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return f"[{host}]", int(rest[1:]) if rest.startswith(":") else None
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, int(port)
    if ":" in value:
        return f"[{value}]", None
    return value, None


class _Header:
    __slots__ = ("name", "patterns", "values")

    def __init__(self, name: str, values: Sequence[str]) -> None:
        self.name = name.lower()
        self.values = frozenset(v.lower() for v in values if not v.startswith("~*"))
        self.patterns = tuple(RouteRegex(v[2:], ignore_case=True)
                              for v in values if v.startswith("~*"))

    def match(self, headers: Mapping[str, Sequence[str]]) -> bool:
        for value in headers.get(self.name, ()):
            lowered = value.lower()
            if lowered in self.values or any(p.search(value) for p in self.patterns):
                return True
        return False


@dataclass(frozen=True, slots=True)
class _Matcher:
    route: RouteEntity
    service: ServiceEntity | None
    sort_key: tuple[Any, ...]
    methods: frozenset[str] | None
    hosts: _Hosts | None
    headers: tuple[_Header, ...]
    snis: _Names | None
    prefixes: tuple[str, ...]
    regexes: tuple[RouteRegex, ...]

    def match(self, req: Request, full_path: str, escaped_path: str) -> Match | None:
        if self.methods is not None and req.method not in self.methods:
            return None
        if self.hosts is not None and not self.hosts.match(req.host, req.port):
            return None
        for header in self.headers:
            if not header.match(req.headers):
                return None
        # Kong skips the SNI criterion for plain-HTTP requests (reference 11 #3)
        if self.snis is not None and req.scheme == "https" and \
                not (req.sni and self.snis.match(req.sni.rstrip("."))):
            return None
        if self.prefixes:
            for prefix in self.prefixes:
                if full_path.startswith(prefix):
                    return Match(self.route, self.service, full_path, prefix, {})
            return None
        if self.regexes:
            for pattern in self.regexes:
                found = pattern.match(escaped_path)
                if found is not None:
                    return Match(self.route, self.service, escaped_path, found.text,
                                 found.captures)
            return None
        return Match(self.route, self.service, full_path, "/", {})


def _weight(route: RouteEntity) -> int:
    fields = (route.sources, route.destinations, route.methods, route.hosts, route.headers,
              route.snis, route.paths)
    return sum(1 for f in fields if f)


def _matchers(route: RouteEntity, service: ServiceEntity | None) -> list[_Matcher]:
    hosts = tuple(route.hosts or ())
    plain_host_only = bool(hosts) and not any("*" in h for h in hosts)
    headers = tuple(_Header(k, v) for k, v in (route.headers or {}).items())
    common: dict[str, Any] = {
        "route": route, "service": service,
        "methods": frozenset(route.methods) if route.methods else None,
        "hosts": _Hosts(hosts) if hosts else None, "headers": headers,
        "snis": _Names([s.lower().rstrip(".") for s in route.snis]) if route.snis else None,
    }
    base = (_weight(route), int(plain_host_only), min(len(headers), 255))
    paths = route.paths or ()
    regexes = [p[1:] for p in paths if p.startswith("~")]
    by_length: dict[int, list[str]] = {}
    for path in paths:
        if not path.startswith("~"):
            by_length.setdefault(len(path), []).append(path)
    out: list[_Matcher] = []
    for length, group in by_length.items():
        out.append(_Matcher(sort_key=(*base, 0, 0, length, route.id), prefixes=tuple(group),
                            regexes=(), **common))
    if regexes:
        compiled = tuple(RouteRegex(r) for r in regexes)
        out.append(_Matcher(sort_key=(*base, 1, route.regex_priority, 0, route.id),
                            prefixes=(), regexes=compiled, **common))
    if not paths:
        out.append(_Matcher(sort_key=(*base, 0, 0, 0, route.id), prefixes=(), regexes=(),
                            **common))
    return out


CACHE_SIZE = 5000  # Kong's router keeps as many matches (MATCH_LRUCACHE_SIZE)
# longer paths are matched afresh: a client sending unique 8 KB paths would otherwise have
# every process hold tens of MB of keys (and matched paths) until the cache is cleared
CACHED_PATH_MAX = 512
_NO_HEADERS: Mapping[str, Sequence[str]] = {}
_MISS = object()


class Router:
    """Immutable after construction, but for ``find``'s cache; ``match`` allocates only the
    result."""

    def __init__(self, routes: Sequence[RouteEntity],
                 services: Mapping[str, ServiceEntity]) -> None:
        matchers: list[_Matcher] = []
        for route in routes:
            if not set(route.protocols) & HTTP_PROTOCOLS:
                continue  # stream routes belong to the stream proxy
            service = services.get(route.service.id) if route.service else None
            if service is not None and not service.enabled:
                continue  # Kong leaves routes of disabled services out of the router
            matchers.extend(_matchers(route, service))
        matchers.sort(key=lambda m: m.sort_key, reverse=True)
        self._matchers = tuple(matchers)
        # requests need their headers decoded only if some route looks at them
        self.uses_headers = any(m.headers for m in matchers)
        self.uses_regex = any(m.regexes for m in matchers)  # else no escaped form is needed
        self.uses_snis = any(m.snis for m in matchers)  # else the SNI is not looked up
        self._index = _PrefixIndex(self._matchers) if len(matchers) > INDEX_FROM else None
        # (method, host, port, raw path, scheme, sni) -> Match or None, as Kong's router
        # remembers them: keep-alive clients ask for the same few paths again and again.
        # Cleared when full rather than LRU: a client sending unique paths gets what an
        # uncached router gives, and an entry costs no bookkeeping when it is read
        self._cache: dict[tuple[str, str, int, str, str, str | None], Match | None] = {}

    def __len__(self) -> int:
        return len(self._matchers)

    def match(self, req: Request) -> Match | None:
        full = normalize(req.raw_path)
        escaped = normalize_escapes(req.raw_path) if self.uses_regex else full
        index = self._index
        for matcher in self._matchers if index is None else index.candidates(full):
            found = matcher.match(req, full, escaped)
            if found is not None:
                return found
        return None

    def find(self, method: str, host: str, port: int, raw_path: str, scheme: str,
             sni: str | None) -> Match | None:
        """``match`` for a router whose routes look at no header (``uses_headers`` false:
        the key is all that decides), remembered."""
        key = (method, host, port, raw_path, scheme, sni)
        cache = self._cache
        found = cache.get(key, _MISS)
        if found is _MISS:
            # normalised first, as the data plane does for ``match``: the escaped form
            # regex routes see has no dot segments either
            found = self.match(Request(method, host, port, normalize(raw_path), _NO_HEADERS,
                                       scheme, sni))
            if len(raw_path) + len(host) <= CACHED_PATH_MAX:
                if len(cache) >= CACHE_SIZE:
                    cache.clear()
                cache[key] = found
        return found  # type: ignore[return-value]


INDEX_FROM = 16  # matchers; below this a scan costs less than the index's lookups


class _PrefixIndex:
    """The matchers a path can match, in Kong's order, without trying every prefix route.

    A prefix matcher can only match a path that starts with one of its prefixes, so the
    candidates are the matchers filed under ``path[:n]`` for each prefix length ``n`` in
    use, plus every matcher without prefixes (regex paths, no paths); merged by position in
    the sorted list, they are tried exactly as the full scan would try them."""

    __slots__ = ("_always", "_by_prefix", "_lengths", "_matchers")

    def __init__(self, matchers: tuple[_Matcher, ...]) -> None:
        self._matchers = matchers
        self._by_prefix: dict[str, list[int]] = {}
        always: list[int] = []
        for position, matcher in enumerate(matchers):
            if not matcher.prefixes:
                always.append(position)
            for prefix in matcher.prefixes:
                self._by_prefix.setdefault(prefix, []).append(position)
        self._always = tuple(always)
        self._lengths = tuple(sorted({len(p) for p in self._by_prefix}))

    def candidates(self, path: str) -> list[_Matcher]:
        found: list[int] = list(self._always)
        size = len(path)
        by_prefix = self._by_prefix
        for length in self._lengths:
            if length > size:
                break
            positions = by_prefix.get(path[:length])
            if positions is not None:
                found.extend(positions)
        found.sort()
        matchers = self._matchers
        return [matchers[i] for i in found]
