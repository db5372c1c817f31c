"""``acl``: group-based allow/deny lists (config and the ``acls`` credential)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from gateway import version
from gateway.plugins.base import PluginSpec
from gateway.schema.checks import AtLeastOneOf, OnlyOneOf
from gateway.schema.compile import Ref
from gateway.schema.entities.common import CreatedAt, Id
from gateway.schema.entity import EntitySchema
from gateway.schema.fields import Foreign
from gateway.schema.typedefs import Tags


@dataclass(frozen=True, slots=True, kw_only=True)
class AclConfig:
    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] | None = None
    hide_groups_header: bool = False
    always_use_authenticated_groups: bool = False
    include_consumer_groups: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AclCredential:
    id: Id
    created_at: CreatedAt
    consumer: Annotated[Ref, Foreign("consumers", on_delete="cascade")]
    group: str
    tags: Tags = None


ACLS = EntitySchema.define(AclCredential, "acls", cache_key=("consumer", "group"),
                           plugin="acl")

PLUGIN = PluginSpec.define(
    "acl", AclConfig, version=version.__version__, priority=950, no_consumer=True,
    checks=(OnlyOneOf(("config.allow", "config.deny")),
            AtLeastOneOf(("config.allow", "config.deny"))),
    entities=(ACLS,))
