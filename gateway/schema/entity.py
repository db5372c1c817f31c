"""``EntitySchema``: an entity dataclass plus what Kong's DAO layer knows about it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.schema import fields as m
from gateway.schema.compile import EntityCheck, FieldSpec, RecordSchema, compile_record

Transform = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class EntitySchema:
    """One entity: table, validation, JSON view and endpoints all derive from this.

    ``name`` is the table and the URL segment (Kong's ``admin_api_name`` when different goes in
    ``admin_name``); ``endpoint_key`` is the field a non-UUID URL key is matched against;
    ``cache_key`` fields form Kong's composite uniqueness (plugins, targets, credentials).
    """

    name: str
    record: RecordSchema
    endpoint_key: str | None = None
    cache_key: tuple[str, ...] = ()
    admin_name: str | None = None
    plugin: str | None = None
    # input rewrites run when their key is present: Kong's shorthand fields (services `url`,
    # upstream `algorithm`/`hash_on`) and subschema defaults (gRPC routes' strip_path)
    rewrites: Mapping[str, Transform] = field(default_factory=dict)
    generate_admin_api: bool = True
    # parents whose nested endpoints Kong does not generate (e.g. /snis/{}/certificate)
    hidden_parent_endpoints: tuple[str, ...] = ()

    @classmethod
    def define(cls, record_cls: type, name: str, *, checks: tuple[EntityCheck, ...] = (),
               **options: Any) -> EntitySchema:
        return cls(name=name, record=compile_record(record_cls, checks), **options)

    @property
    def url_name(self) -> str:
        return self.admin_name or self.name

    @property
    def fields(self) -> tuple[FieldSpec, ...]:
        return self.record.fields

    def field(self, name: str) -> FieldSpec:
        return self.record.by_name[name]

    @functools.cached_property  # read per row by every load: 10,000s of rows
    def stored_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.record.fields if f.stored)

    @property
    def foreign_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.record.fields if f.kind == "foreign")

    @property
    def unique_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.record.fields if f.has(m.Unique))

    @property
    def has_tags(self) -> bool:
        return "tags" in self.record.by_name

    def timestamp_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.record.fields if f.has(m.Timestamp))
