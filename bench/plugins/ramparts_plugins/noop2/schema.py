"""``noop2``: ``noop`` under another name (one instance per plugin name runs per request,
as in Kong, so a chain of three no-ops needs three names)."""

from __future__ import annotations

import dataclasses

from ramparts_plugins.noop.schema import PLUGIN as NOOP

PLUGIN = dataclasses.replace(NOOP, name="noop2")
