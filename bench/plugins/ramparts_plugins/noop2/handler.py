"""``noop2``: the ``noop`` handler."""

from __future__ import annotations

from ramparts_plugins.noop.handler import NoopHandler


class Noop2Handler(NoopHandler):
    pass
