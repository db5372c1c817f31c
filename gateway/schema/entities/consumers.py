"""``consumers``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from gateway.schema.checks import AtLeastOneOf
from gateway.schema.entities.common import CreatedAt, Id, UpdatedAt
from gateway.schema.entity import EntitySchema
from gateway.schema.fields import Unique
from gateway.schema.typedefs import Tags


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumerEntity:
    id: Id
    created_at: CreatedAt
    updated_at: UpdatedAt
    username: Annotated[str | None, Unique()] = None
    custom_id: Annotated[str | None, Unique()] = None
    tags: Tags = None


CONSUMERS = EntitySchema.define(ConsumerEntity, "consumers", endpoint_key="username",
                                checks=(AtLeastOneOf(("custom_id", "username")),))
