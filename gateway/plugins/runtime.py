"""The plugin runtime: handlers, and the chains that say which instance of which plugin runs
for a request, resolved per route when a snapshot is built (never per request).

Kong's rules (reference kong.md §5): one instance per plugin name per request, looked up in
the order route+service+consumer, route+consumer, service+consumer, route+service, consumer,
route, service, global; the consumer part is decided when the plugin's turn comes (an auth
plugin of higher priority names the consumer first). Plugins run by priority, descending,
then by name, descending. Disabled instances are left out at build time; an instance whose
``protocols`` exclude the request's is skipped. ``certificate`` and ``rewrite`` run global
instances only (no route is known yet).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from gateway.plugins.pdk import Hello, Kong

PHASES = ("certificate", "rewrite", "access", "header_filter", "body_filter", "log")


class Handler:
    """Base of every plugin handler. Subclasses set ``PRIORITY`` and ``VERSION`` (Kong's
    handler fields), precompute what they can from ``config`` in ``__init__``, and override
    only the phases they use; a phase may be a plain function or return an awaitable
    (``rewrite``, ``access``, ``log``). ``certificate``, ``header_filter`` and
    ``body_filter`` are synchronous (the first runs inside the TLS handshake)."""

    PRIORITY: ClassVar[int] = 0
    VERSION: ClassVar[str] = "0.1.0"
    name: ClassVar[str] = ""
    # True: what ``access`` does to a request depends on the connection (its address and TLS
    # facts), the config, the snapshot and the earlier plugins only, never on the request
    # itself; a handler whose answer ages calls ``kong.varies()``. A chain of such handlers
    # with nothing after access runs once per keep-alive connection, and its later requests
    # replay the effect (``Plan.replayable``)
    CONNECTION_SCOPED: ClassVar[bool] = False

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config

    def certificate(self, hello: Hello) -> None: ...
    def rewrite(self, kong: Kong) -> Awaitable[None] | None: ...
    def access(self, kong: Kong) -> Awaitable[None] | None: ...
    def header_filter(self, kong: Kong) -> None: ...

    def body_filter(self, kong: Kong, chunk: bytes, eof: bool) -> bytes:
        return chunk

    def log(self, kong: Kong) -> Awaitable[None] | None: ...


def implements(handler: type[Handler], phase: str) -> bool:
    return getattr(handler, phase) is not getattr(Handler, phase)


@dataclass(frozen=True, slots=True)
class Instance:
    """One enabled plugin row, with its handler built from its config."""

    id: str
    name: str
    handler: Handler
    protocols: frozenset[str]
    phases: frozenset[str]


@dataclass(frozen=True, slots=True)
class Slot:
    """Everything one plugin name may run as on one route, by lookup rank."""

    name: str
    priority: int
    phases: frozenset[str]
    consumer_first: Mapping[str, Instance]   # consumer id -> route+service+consumer, ...
    route_service: Instance | None
    consumer_only: Mapping[str, Instance]
    fallback: Instance | None                # route, service or global

    @property
    def fixed(self) -> bool:
        """No consumer-scoped instance: the same instance whoever the consumer is."""
        return not self.consumer_first and not self.consumer_only

    def pick(self, consumer: str | None, protocol: str) -> Instance | None:
        found = None
        if consumer is not None:
            found = self.consumer_first.get(consumer)
        if found is None:
            found = self.route_service
        if found is None and consumer is not None:
            found = self.consumer_only.get(consumer)
        if found is None:
            found = self.fallback
        return found if found is not None and protocol in found.protocols else None


Phase = Callable[["Kong"], "Awaitable[None] | None"]


@dataclass(frozen=True, slots=True)
class Plan:
    """What a request of one protocol runs, phase by phase, in order: the handlers' bound
    methods (``log`` with the plugin's name, for its error line)."""

    rewrite: tuple[Phase, ...]
    access: tuple[Phase, ...]
    header_filter: tuple[Callable[[Kong], None], ...]
    body_filter: tuple[Callable[[Kong, bytes, bool], bytes], ...]
    log: tuple[tuple[Phase, str], ...]
    # every access handler is connection-scoped and no phase follows access: a keep-alive
    # connection's later requests replay its first success (``Kong.recorded``)
    replayable: bool = False
    # some phase runs after access (header_filter, body_filter or log): the exchange keeps
    # the plan for them
    later: bool = False

    @classmethod
    def of(cls, instances: Iterable[Instance]) -> Plan:
        found = tuple(instances)

        def calls(phase: str) -> tuple[Any, ...]:
            return tuple(getattr(i.handler, phase) for i in found if phase in i.phases)

        access, head, body = calls("access"), calls("header_filter"), calls("body_filter")
        log = tuple((i.handler.log, i.name) for i in found if "log" in i.phases)
        later = bool(head or body or log)
        replayable = bool(access) and not later and all(
            i.handler.CONNECTION_SCOPED for i in found if "access" in i.phases)
        return cls(calls("rewrite"), access, head, body, log, replayable, later)


@dataclass(frozen=True, slots=True)
class Chain:
    """The plugins of one route (or the global chain), in the order they run. ``plans``:
    when no slot depends on the consumer (the common case), what runs is known per protocol
    when the snapshot is built, and a request only looks it up."""

    slots: tuple[Slot, ...] = ()
    phases: frozenset[str] = frozenset()
    plans: Mapping[str, Plan] | None = None  # by protocol; None: consumer-scoped instances
    # ``has(phase)``: the phases' own ``__contains__``, asked twice per request (a method
    # of this class would be one more Python frame each time)
    has: Callable[[str], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "has", self.phases.__contains__)


EMPTY_CHAIN = Chain()
PROTOCOLS = ("http", "https", "grpc", "grpcs", "ws", "wss")


@dataclass(frozen=True, slots=True)
class Chains:
    """Per route id; ``glob`` for requests no route matched and the global-only phases."""

    by_route: Mapping[str, Chain] = field(default_factory=dict)
    glob: Chain = EMPTY_CHAIN
    any: bool = False  # some plugin runs somewhere: without one, requests skip the runtime

    def for_route(self, route_id: str) -> Chain:
        return self.by_route.get(route_id, self.glob)


EMPTY_CHAINS = Chains()


@dataclass(frozen=True, slots=True)
class Row:
    """What the runtime needs of a plugin row."""

    id: str
    name: str
    route: str | None
    service: str | None
    consumer: str | None
    config: Mapping[str, Any]
    protocols: tuple[str, ...]
    enabled: bool = True


def row_of(raw: Mapping[str, Any]) -> Row:
    def ref(key: str) -> str | None:
        value = raw.get(key)
        return str(value["id"]) if value else None

    return Row(id=str(raw["id"]), name=str(raw["name"]), route=ref("route"),
               service=ref("service"), consumer=ref("consumer"),
               config=MappingProxyType(dict(raw.get("config") or {})),
               protocols=tuple(raw.get("protocols") or ()), enabled=bool(raw["enabled"]))


def build_chains(rows: Iterable[Row], routes: Mapping[str, str | None],
                 handlers: Mapping[str, type[Handler]]) -> Chains:
    """``routes``: route id -> its service id. Rows without a handler are not here (the
    snapshot's fail-closed guard refuses their routes)."""
    instances: dict[str, list[tuple[Row, Instance]]] = {}
    for row in rows:
        handler = handlers.get(row.name)
        if not row.enabled or handler is None:
            continue
        phases = frozenset(p for p in PHASES if implements(handler, p))
        instance = Instance(row.id, row.name, handler(row.config), frozenset(row.protocols),
                            phases)
        instances.setdefault(row.name, []).append((row, instance))
    # a route no plugin names has its service's chain: built once per service and shared
    # (10,000 routes without their own plugins: a handful of chains, not 10,000)
    named = {row.route for found in instances.values() for row, _ in found}
    shared: dict[str | None, Chain] = {}
    by_route = {}
    for rid, sid in routes.items():
        if rid in named:
            by_route[rid] = _chain(instances, handlers, rid, sid)
        else:
            chain = shared.get(sid)
            if chain is None:
                chain = shared[sid] = _chain(instances, handlers, rid, sid)
            by_route[rid] = chain
    glob = _chain(instances, handlers, None, None)
    return Chains(by_route=by_route, glob=glob,  # a plain dict, as plans above
                  any=bool(glob.phases) or any(c.phases for c in by_route.values()))


def _chain(instances: Mapping[str, list[tuple[Row, Instance]]],
           handlers: Mapping[str, type[Handler]], route: str | None,
           service: str | None) -> Chain:
    slots = [slot for name, found in instances.items()
             if (slot := _slot(name, handlers[name], found, route, service)) is not None]
    slots.sort(key=lambda s: (s.priority, s.name), reverse=True)
    phases = frozenset(p for s in slots for p in s.phases)
    plans = None
    if all(slot.fixed for slot in slots):
        # a plain dict, read through Chain's Mapping type: a MappingProxyType's ``get`` is a
        # method call on the dict behind it, twice per request
        plans = {protocol: _plan(slots, protocol) for protocol in PROTOCOLS}
    return Chain(tuple(slots), phases, plans)


def _plan(slots: list[Slot], protocol: str) -> Plan:
    return Plan.of(i for slot in slots if (i := slot.pick(None, protocol)) is not None)


def _slot(name: str, handler: type[Handler], found: list[tuple[Row, Instance]],
          route: str | None, service: str | None) -> Slot | None:
    consumer_first: dict[str, Instance] = {}
    consumer_ranks: dict[str, int] = {}
    consumer_only: dict[str, Instance] = {}
    route_service = fallback = None
    fallback_rank = 9
    for row, instance in found:
        r = row.route is not None and row.route == route
        s = row.service is not None and row.service == service
        if (row.route is not None and not r) or (row.service is not None and not s):
            continue  # scoped to another route or service
        if row.consumer is not None:
            rank = 1 if r and s else 2 if r else 3 if s else 5
            if rank == 5:
                consumer_only[row.consumer] = instance
            elif rank < consumer_ranks.get(row.consumer, 9):
                consumer_ranks[row.consumer] = rank
                consumer_first[row.consumer] = instance
        elif r and s:
            route_service = instance
        else:
            rank = 6 if r else 7 if s else 8
            if rank < fallback_rank:
                fallback_rank, fallback = rank, instance
    if route is None:  # the global chain: global instances only
        consumer_first, consumer_only, route_service = {}, {}, None
        fallback = fallback if fallback_rank == 8 else None
    if not (consumer_first or consumer_only or route_service or fallback):
        return None
    phases = frozenset(p for p in PHASES if implements(handler, p))
    return Slot(name, handler.PRIORITY, phases, MappingProxyType(consumer_first),
                route_service, MappingProxyType(consumer_only), fallback)
