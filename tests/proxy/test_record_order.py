"""The records the data plane makes per request are built by position (a class called with
keywords gets them in a dict, made and freed per request): reordering their fields would
mix up values of one type (host and path are both ``str``) without any type error."""

from __future__ import annotations

from dataclasses import fields

from gateway.proxy.access_log import Entry
from gateway.proxy.forwarding import Forwarded
from gateway.proxy.http1 import RequestHead
from gateway.router.router import Request


def _names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def test_the_per_request_records_keep_the_order_their_callers_pass() -> None:
    assert _names(RequestHead) == ["method", "target", "version", "headers", "keep_alive",
                                   "upgrade", "index", "hosts"]
    assert _names(Request) == ["method", "host", "port", "raw_path", "headers", "scheme",
                               "sni"]
    assert _names(Forwarded) == ["hop", "host", "path", "prefix", "version", "request_id"]
    assert _names(Entry) == ["client_ip", "when", "method", "target", "version", "status",
                             "sent", "referer", "user_agent", "request_id", "latency_ms",
                             "client_verify"]
