"""Plugin chains as Kong resolves them: which instance applies (the lookup order), in what
order plugins run (priority, then name, descending), and what is left out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any

import pytest

from gateway.plugins import phases
from gateway.plugins.pdk import ClientView, Consumer, Kong, RequestView
from gateway.plugins.runtime import Chains, Handler, Row, build_chains


class Auth(Handler):
    PRIORITY = 1000

    def access(self, kong: Kong) -> None: ...


class Limit(Handler):
    PRIORITY = 900

    def access(self, kong: Kong) -> None: ...
    def log(self, kong: Kong) -> None: ...


class Alpha(Handler):
    PRIORITY = 900

    def header_filter(self, kong: Kong) -> None: ...


HANDLERS: Mapping[str, type[Handler]] = {"auth": Auth, "limit": Limit, "alpha": Alpha}
HTTP = ("http", "https")


def row(name: str, ident: str, route: str | None = None, service: str | None = None,
        consumer: str | None = None, enabled: bool = True,
        protocols: tuple[str, ...] = HTTP, **config: Any) -> Row:
    return Row(id=ident, name=name, route=route, service=service, consumer=consumer,
               config=config, protocols=protocols, enabled=enabled)


ROWS = [
    row("limit", "global"),
    row("limit", "service", service="s1"),
    row("limit", "route", route="r1"),
    row("limit", "route+service", route="r1", service="s1"),
    row("limit", "consumer", consumer="c1"),
    row("limit", "service+consumer", service="s1", consumer="c2"),
    row("limit", "route+consumer", route="r1", consumer="c3"),
    row("limit", "route+service+consumer", route="r1", service="s1", consumer="c3"),
    row("limit", "other-route", route="r9"),
]


def chains(rows: list[Row]) -> Chains:
    return build_chains(rows, {"r1": "s1", "r2": "s1", "r3": None}, HANDLERS)


@pytest.mark.parametrize(("route", "consumer", "expected"), [
    ("r1", None, "route+service"),
    ("r1", "c1", "route+service"),         # route+service outranks consumer alone
    ("r1", "c2", "service+consumer"),      # rank 3 beats rank 4
    ("r1", "c3", "route+service+consumer"),
    ("r2", None, "service"),               # r2 is on s1, not r1
    ("r2", "c1", "consumer"),              # consumer alone outranks service
    ("r2", "c2", "service+consumer"),
    ("r3", None, "global"),
    ("r3", "c2", "global"),                # c2's instance is for service s1 only
    ("nowhere", None, "global"),           # an unknown route gets the global chain
])
def test_lookup_order(route: str, consumer: str | None, expected: str) -> None:
    slot = chains(ROWS).for_route(route).slots[0]
    instance = slot.pick(consumer, "http")
    assert instance is not None and instance.id == expected


def test_routes_without_their_own_plugins_share_their_services_chain() -> None:
    """One chain per service, not per route (10,000 routes: memory and build time)."""
    built = build_chains(ROWS, {"r1": "s1", "r2": "s1", "r4": "s1", "r3": None, "r5": None},
                         HANDLERS)
    assert built.for_route("r2") is built.for_route("r4")
    assert built.for_route("r3") is built.for_route("r5")
    assert built.for_route("r1") is not built.for_route("r2")  # r1 has plugins of its own
    assert built.for_route("r2") is not built.for_route("r3")
    picked = built.for_route("r4").slots[0].pick(None, "http")
    assert picked is not None and picked.id == "service"


def test_consumer_wins_over_route_only_when_scoped_with_it() -> None:
    rows = [row("limit", "route", route="r1"), row("limit", "consumer", consumer="c1")]
    slot = chains(rows).for_route("r1").slots[0]
    picked = slot.pick("c1", "http")
    assert picked is not None and picked.id == "consumer"  # rank 5 before rank 6


def test_priority_then_name_descending() -> None:
    rows = [row("alpha", "a"), row("auth", "b"), row("limit", "c")]
    order = [s.name for s in chains(rows).for_route("r1").slots]
    assert order == ["auth", "limit", "alpha"]  # 1000, then 900 by name descending
    assert chains(rows).for_route("r1").phases == {"access", "header_filter", "log"}


def test_disabled_protocols_unknown_and_global_only() -> None:
    rows = [row("limit", "off", route="r1", enabled=False), row("limit", "global"),
            row("auth", "grpc-only", route="r1", protocols=("grpc",)),
            row("nohandler", "x", route="r1"), row("alpha", "routed", route="r1")]
    chain = chains(rows).for_route("r1")
    limit = next(s for s in chain.slots if s.name == "limit").pick(None, "http")
    assert limit is not None and limit.id == "global"  # the disabled route row is gone
    auth = next(s for s in chain.slots if s.name == "auth")
    assert auth.pick(None, "http") is None and auth.pick(None, "grpc") is not None
    assert {s.name for s in chain.slots} == {"limit", "auth", "alpha"}
    # the global chain (rewrite, certificate, unrouted requests) has global rows only
    assert [s.name for s in chains(rows).glob.slots] == ["limit"]


def test_handlers_are_built_once_per_row_with_their_config() -> None:
    built = chains([row("limit", "c", route="r1", minute=5)])
    first = built.for_route("r1").slots[0].pick(None, "http")
    assert first is not None and first.handler.config["minute"] == 5
    assert first.phases == {"access", "log"}


class Ran(Handler):
    """Appends its row's ``tag`` to ``kong.ctx['ran']``; ``wait`` makes access async, and
    ``names`` (a consumer id) authenticates that consumer."""

    PRIORITY = 500

    def access(self, kong: Kong) -> Awaitable[None] | None:
        kong.ctx.setdefault("ran", []).append(self.config["tag"])
        if self.config.get("names"):
            kong.client.authenticate(Consumer(id=self.config["names"]), None)
        return asyncio.sleep(0) if self.config.get("wait") else None


class Early(Ran):
    PRIORITY = 2000


def kong_for(protocol: str = "http") -> Kong:
    return Kong(request=RequestView("GET", protocol, "h", 80, "/", b"", []),
                client=ClientView(ip="127.0.0.1", tls=None), protocol=protocol)


def test_a_chain_of_synchronous_handlers_needs_no_coroutine() -> None:
    rows = [row("early", "e", route="r1", tag="early"), row("ran", "r", route="r1", tag="ran")]
    chain = build_chains(rows, {"r1": None}, {"early": Early, "ran": Ran}).for_route("r1")
    assert chain.plans is not None  # no consumer-scoped instance: planned per protocol
    kong = kong_for()
    assert phases.start(chain, "access", kong) is None
    assert kong.ctx["ran"] == ["early", "ran"]
    assert phases.start(chain, "access", kong_for("grpc")) is None  # protocols exclude it


async def test_after_an_async_handler_the_rest_of_the_chain_runs() -> None:
    rows = [row("early", "e", route="r1", tag="early", wait=True),
            row("ran", "r", route="r1", tag="ran")]
    chain = build_chains(rows, {"r1": None}, {"early": Early, "ran": Ran}).for_route("r1")
    kong = kong_for()
    pending = phases.start(chain, "access", kong)
    assert pending is not None and kong.ctx["ran"] == ["early"]
    await pending
    assert kong.ctx["ran"] == ["early", "ran"]


@pytest.mark.parametrize("wait", [False, True])
async def test_consumer_scoped_instances_are_picked_when_their_turn_comes(wait: bool) -> None:
    rows = [row("early", "e", route="r1", tag="auth", names="c1", wait=wait),
            row("ran", "route", route="r1", tag="route"),
            row("ran", "consumer", consumer="c1", tag="consumer")]
    chain = build_chains(rows, {"r1": None}, {"early": Early, "ran": Ran}).for_route("r1")
    assert chain.plans is None
    kong = kong_for()
    await phases.run(chain, "access", kong)
    assert kong.ctx["ran"] == ["auth", "consumer"]


class Scoped(Handler):
    """A connection-scoped access phase: names the consumer of the connection's address."""

    PRIORITY = 1500
    CONNECTION_SCOPED = True

    def access(self, kong: Kong) -> None:
        kong.client.authenticate(Consumer(id=kong.client.ip), None)
        kong.service_request.set_header("X-Who", kong.client.ip)
        kong.ctx["seen"] = True
        if self.config.get("ages"):
            kong.varies()


class ScopedToo(Scoped):
    PRIORITY = 1400


class ScopedLogs(Scoped):
    def log(self, kong: Kong) -> None: ...


REPLAY_HANDLERS: Mapping[str, type[Handler]] = {
    "scoped": Scoped, "too": ScopedToo, "logs": ScopedLogs, "auth": Auth, "alpha": Alpha}


@pytest.mark.parametrize(("names", "replayable"), [
    (["scoped"], True),
    (["scoped", "too"], True),       # mtls-auth then acl
    (["scoped", "auth"], False),     # an access phase that reads the request
    (["scoped", "alpha"], False),    # something runs after access: a header filter
    (["logs"], False),               # or a log phase
    (["alpha"], False),              # no access phase at all
])
def test_which_plans_replay_on_a_keep_alive_connection(names: list[str],
                                                       replayable: bool) -> None:
    rows = [row(name, name, route="r1") for name in names]
    chain = build_chains(rows, {"r1": None}, REPLAY_HANDLERS).for_route("r1")
    plan = phases.plan_of(chain, kong_for("https"))
    assert plan is not None and plan.replayable is replayable


@pytest.mark.parametrize("ages", [False, True])
def test_a_replayed_request_gets_what_the_first_one_got(ages: bool) -> None:
    chain = build_chains([row("scoped", "s", route="r1", ages=ages)], {"r1": None},
                         REPLAY_HANDLERS).for_route("r1")
    first = kong_for("https")
    assert phases.start(chain, "access", first) is None
    replay = first.recorded(chain)
    if ages:  # an answer from a cache that ages is not replayed
        assert replay is None
        return
    assert replay is not None
    again = Kong.replayed(replay, "https", None, "r1", None)  # type: ignore[arg-type]
    assert again.consumer_id == "127.0.0.1"
    changes = again.upstream_changes()
    assert b"x-who" in changes.drop and changes.add == ((b"x-who", b"127.0.0.1"),)
    assert changes is replay.changes  # made once, when the first request was recorded
    assert again.ctx_value("seen") is True
    again.ctx["later"] = 1  # ctx is the request's own
    assert first.ctx_value("later") is None
