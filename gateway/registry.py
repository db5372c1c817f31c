"""Every entity and plugin the node knows, in one immutable registry.

Core entities and the entities bundled plugins ship are always present (their tables always
exist); the ``plugins`` setting decides which plugins are enabled (may be configured, and
run: a plugin row whose plugin is not enabled has no handler, so its routes fail closed).
Names other than ``bundled``/``off``/a bundled plugin are custom plugins (plugins/loader.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gateway.plugins import loader
from gateway.plugins.acl import schema as acl
from gateway.plugins.base import PluginSpec
from gateway.plugins.handlers import HANDLERS
from gateway.plugins.mtls_auth import schema as mtls_auth
from gateway.plugins.runtime import Handler
from gateway.schema.entities.certificates import CA_CERTIFICATES, CERTIFICATES, SNIS
from gateway.schema.entities.consumers import CONSUMERS
from gateway.schema.entities.plugins import PLUGINS
from gateway.schema.entities.routes import ROUTES
from gateway.schema.entities.services import SERVICES
from gateway.schema.entities.upstreams import TARGETS, UPSTREAMS
from gateway.schema.entity import EntitySchema
from gateway.schema.validate import ENTITY_LIMITS, Context

CORE: tuple[EntitySchema, ...] = (CERTIFICATES, SNIS, CA_CERTIFICATES, SERVICES, ROUTES,
                                  UPSTREAMS, TARGETS, CONSUMERS, PLUGINS)

BUNDLED: tuple[PluginSpec, ...] = (mtls_auth.PLUGIN, acl.PLUGIN)


UnknownPlugin = loader.PluginLoadError  # what a bad ``plugins`` setting raises


@dataclass(frozen=True)
class Registry:
    entities: Mapping[str, EntitySchema]
    available: Mapping[str, PluginSpec]
    enabled: Mapping[str, PluginSpec]
    handlers: Mapping[str, type[Handler]] = field(  # of the enabled plugins
        default_factory=lambda: MappingProxyType({}))

    def context(self) -> Context:
        return Context(plugin_schemas=MappingProxyType(
            {name: spec.config for name, spec in self.enabled.items()}), limits=ENTITY_LIMITS)

    def entity_plugin_enabled(self, entity: EntitySchema) -> bool:
        return entity.plugin is None or entity.plugin in self.enabled


def build(plugins: Iterable[str] = ("bundled",), plugin_path: Iterable[str] = ()
          ) -> Registry:
    """``plugins`` in Kong's syntax: ``bundled``, ``off`` (none) and plugin names."""
    available = {p.name: p for p in BUNDLED}
    handlers: dict[str, type[Handler]] = dict(HANDLERS)
    enabled: dict[str, PluginSpec] = {}
    names = tuple(plugins)
    if any(name not in ("bundled", "off") and name not in available for name in names):
        loader.extend_path(plugin_path)
    for name in names:
        if name == "bundled":
            enabled.update(available)
        elif name == "off":
            continue
        elif name in available:
            enabled[name] = available[name]
        else:
            custom = loader.load(name)
            available[name] = enabled[name] = custom.spec
            handlers[name] = custom.handler
    entities = {e.name: e for e in CORE}
    for spec in BUNDLED:
        entities.update({e.name: e for e in spec.entities})
    return Registry(entities=MappingProxyType(entities),
                    available=MappingProxyType(available),
                    enabled=MappingProxyType(enabled),
                    handlers=MappingProxyType({n: h for n, h in handlers.items()
                                               if n in enabled}))
