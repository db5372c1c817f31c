"""``noop3``: the ``noop`` handler."""

from __future__ import annotations

from ramparts_plugins.noop.handler import NoopHandler


class Noop3Handler(NoopHandler):
    pass
