"""Deterministic ids for entries that carry none: Kong's UUIDv5 scheme, so that re-imports are
stable and ids equal what Kong generates for the same file.

Kong (``declarative_config.lua``): one namespace per entity, ``uuid5(NS, entity)``; the id is
``uuid5(namespace, key)`` where the key is the endpoint key's value (when the endpoint key is
not globally unique, ``:<parent id or reference>`` is appended per cascading foreign key, e.g.
targets), else a cache-key-like ``entity:part:part`` string; entries with neither get a
random id. Pure.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from functools import cache
from typing import Any

from gateway.schema import fields as m
from gateway.schema.entity import EntitySchema

KONG_NAMESPACE = uuid.UUID("fd02801f-0957-4a15-a55a-c8d9606f30b5")


@cache
def namespace(entity: str) -> uuid.UUID:
    return uuid.uuid5(KONG_NAMESPACE, entity)


def generate(entity: str, key: str) -> str:
    return str(uuid.uuid5(namespace(entity), key))


def key_for(schema: EntitySchema, item: Mapping[str, Any], parent_id: str | None,
            child_key: str | None) -> str | None:
    """The name hashed into the id, or None (a random id). ``item`` is the entry as written,
    before its parent reference is filled in; ``child_key`` names the field that reference
    goes in when the entry is nested (``parent_id``)."""
    ek = schema.endpoint_key
    if ek is not None and isinstance(item.get(ek), str):
        key: str = item[ek]
        if not schema.field(ek).has(m.Unique):
            for spec in schema.foreign_fields:
                if spec.foreign is None or spec.foreign.on_delete != "cascade":
                    continue
                if parent_id is not None:
                    key += ":" + parent_id
                elif isinstance(item.get(spec.name), str):
                    key += ":" + item[spec.name]
                else:
                    return None
        return key
    if schema.cache_key:
        return _cache_key(schema, item, parent_id, child_key)
    return None


def _cache_key(schema: EntitySchema, item: Mapping[str, Any], parent_id: str | None,
               child_key: str | None) -> str | None:
    parts = [schema.name]
    for name in schema.cache_key:
        spec = schema.field(name)
        value = item.get(name)
        if spec.has(m.Auto):
            return None
        if isinstance(value, str):
            parts.append(value)
        elif value is None:
            if name == child_key:
                if parent_id is None:
                    return None
                parts.append(parent_id)
            elif spec.required:
                return None
            else:
                parts.append("")
        # any other value (a reference written as a record) adds nothing: Kong's own rule
    return ":".join(parts)


def assign(schema: EntitySchema, item: Mapping[str, Any], parent_id: str | None = None,
           child_key: str | None = None) -> str | None:
    """The entry's id: its own when given, else generated; None when the given id is not a
    string (validation reports it)."""
    given = item.get("id")
    if given is not None:
        return given.lower() if isinstance(given, str) else None
    key = key_for(schema, item, parent_id, child_key)
    return generate(schema.name, key) if key is not None else str(uuid.uuid4())
