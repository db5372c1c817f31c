"""Every phase defined, none doing anything: what a request pays for the runtime to call a
plugin (issue 10: three of these on a route add at most 10 % CPU per request)."""

from __future__ import annotations

from gateway.plugins.pdk import Hello, Kong
from gateway.plugins.runtime import Handler


class NoopHandler(Handler):
    PRIORITY = 10
    VERSION = "1.0.0"

    def certificate(self, hello: Hello) -> None:
        return None

    def rewrite(self, kong: Kong) -> None:
        return None

    def access(self, kong: Kong) -> None:
        return None

    def header_filter(self, kong: Kong) -> None:
        return None

    def body_filter(self, kong: Kong, chunk: bytes, eof: bool) -> bytes:
        return chunk

    def log(self, kong: Kong) -> None:
        return None
