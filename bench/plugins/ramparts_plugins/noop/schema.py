"""``noop``: a plugin with no settings (bench only: the cost of the plugin runtime itself)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.plugins.base import PluginSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class NoopConfig:
    pass


PLUGIN = PluginSpec.define("noop", NoopConfig)
