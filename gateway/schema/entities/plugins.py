"""``plugins``: the generic plugin row; ``config`` is validated by the plugin's own schema."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from gateway.schema.compile import Ref
from gateway.schema.entities.common import CreatedAt, Id, UpdatedAt
from gateway.schema.entity import EntitySchema
from gateway.schema.fields import Foreign, OneOf, PluginConfig, Set
from gateway.schema.typedefs import PROTOCOLS, Tags, Utf8Name


@dataclass(frozen=True, slots=True, kw_only=True)
class PluginEntity:
    id: Id
    created_at: CreatedAt
    updated_at: UpdatedAt
    name: str
    instance_name: Utf8Name = None
    route: Annotated[Ref | None, Foreign("routes", on_delete="cascade")] = None
    service: Annotated[Ref | None, Foreign("services", on_delete="cascade")] = None
    consumer: Annotated[Ref | None, Foreign("consumers", on_delete="cascade")] = None
    config: Annotated[Mapping[str, Any], PluginConfig()] = field(default_factory=dict)
    protocols: Annotated[tuple[Annotated[str, OneOf(*PROTOCOLS)], ...], Set()] = (
        "grpc", "grpcs", "http", "https")
    enabled: bool = True
    tags: Tags = None


PLUGINS = EntitySchema.define(PluginEntity, "plugins", endpoint_key="instance_name",
                              cache_key=("name", "route", "service", "consumer"))
