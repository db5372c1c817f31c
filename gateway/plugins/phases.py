"""Running a chain's phases for one request (the exchange calls these)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from gateway.plugins.pdk import Headers, Hello, Kong
from gateway.plugins.runtime import Chain, Chains, Instance, Phase, Plan, Slot
from gateway.tasks import spawn

log = logging.getLogger("ramparts.plugins")


async def run(chain: Chain, phase: str, kong: Kong) -> None:
    """``rewrite`` or ``access``: in order; a ``kong.response.exit`` (``Exit``) ends it."""
    pending = start(chain, phase, kong)
    if pending is not None:
        await pending


def start(chain: Chain, phase: str, kong: Kong) -> Awaitable[None] | None:
    """``run`` without a coroutine while every handler is synchronous (the common case):
    an awaitable is returned only once a handler returned one, and the rest of the chain
    runs after it."""
    plan = plan_of(chain, kong)
    if plan is not None:
        return planned(plan.access if phase == "access" else plan.rewrite, kong)
    return _picked(chain.slots, 0, phase, kong)


def plan_of(chain: Chain, kong: Kong) -> Plan | None:
    """The chain's plan for the request's protocol; None when an instance depends on the
    consumer (then each slot picks when its turn comes)."""
    plans = chain.plans
    return plans.get(kong.protocol) if plans is not None else None


def planned(calls: tuple[Phase, ...], kong: Kong, first: int = 0
            ) -> Awaitable[None] | None:
    # iterated, not indexed: the tuple's iterator is cheaper than range() and subscripts
    # (a handler's place is looked up only when it returned an awaitable)
    for call in calls[first:] if first else calls:
        result = call(kong)
        if result is not None:
            return then(result, calls, kong, call, first)
    return None


def then(result: Awaitable[None], calls: tuple[Phase, ...], kong: Kong, call: Phase,
         first: int = 0) -> Awaitable[None]:
    """``call`` returned ``result``: the calls after it run once it is awaited."""
    return _then(result, partial(planned, calls, kong, calls.index(call, first) + 1))


def _picked(slots: tuple[Slot, ...], first: int, phase: str, kong: Kong
            ) -> Awaitable[None] | None:
    """Consumer-scoped instances: each slot picks when its turn comes (an auth plugin of
    higher priority may just have named the consumer)."""
    for index in range(first, len(slots)):
        slot = slots[index]
        if phase not in slot.phases:
            continue
        instance = slot.pick(kong.consumer_id, kong.protocol)
        if instance is None:
            continue
        result = getattr(instance.handler, phase)(kong)
        if result is not None:
            return _then(result, partial(_picked, slots, index + 1, phase, kong))
    return None


async def _then(result: Awaitable[None], rest: Callable[[], Awaitable[None] | None]) -> None:
    await result
    pending = rest()
    if pending is not None:
        await pending


def certificate(chains: Chains, ssl_object: Any, server_name: str | None) -> None:
    """Sync, inside the TLS handshake: global instances only (no route is known)."""
    glob = chains.glob
    if not glob.has("certificate"):
        return
    hello = Hello(server_name, ssl_object)
    for slot in glob.slots:
        if "certificate" in slot.phases:
            instance = slot.pick(None, "https")
            if instance is not None:
                instance.handler.certificate(hello)


def picked(chain: Chain, kong: Kong) -> tuple[Instance, ...]:
    """The instances that run after access (the consumer is known by then), in order."""
    out = []
    for slot in chain.slots:
        instance = slot.pick(kong.consumer_id, kong.protocol)
        if instance is not None:
            out.append(instance)
    return tuple(out)


def after(chain: Chain, kong: Kong, plan: Plan | None = None) -> Plan | None:
    """What runs once access is over (``header_filter``, ``body_filter``, ``log`` below,
    with the request's Kong); None when no instance of the request has a phase left (an
    auth plugin alone). ``plan``: the chain's (``plan_of``), when it has one: it is the
    answer as it is, nothing is made per request."""
    if plan is None:
        plan = Plan.of(picked(chain, kong))
    return plan if plan.later else None


def header_filter(plan: Plan, kong: Kong, status: int, headers: Headers, length: int | None,
                  source: str) -> tuple[int, Headers, int | None]:
    """``length``: the body's Content-Length, if known; a filter may clear it."""
    return kong.filter_head(plan.header_filter, status, headers, length, source)


def body_filter(plan: Plan, kong: Kong, chunk: bytes, eof: bool) -> bytes:
    for call in plan.body_filter:
        chunk = call(kong, chunk, eof)
    return chunk


def run_log(plan: Plan, kong: Kong) -> None:
    """``log``, once the response's last write is with the transport (nginx's log phase:
    after the response, before the connection reads its next request). A handler's
    awaitable runs as a task of its own, off the connection's path."""
    for call, name in plan.log:
        try:
            result = call(kong)
        except Exception:
            log.exception("plugin %s: log phase failed", name)
            continue
        if result is not None:
            spawn(_awaited(result), f"log-{name}")


async def _awaited(result: Awaitable[None]) -> None:
    await result
