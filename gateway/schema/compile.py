"""Turn an annotated dataclass into the ``FieldSpec`` tree every other layer derives from.

``compile_record(cls)`` reads the type hints once (at import) and produces an immutable
description: kind, nullability, default, element/record sub-specs and markers. Nothing here
validates values; that is ``validate.py``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from gateway.schema import fields as m

Kind = Literal["string", "integer", "number", "boolean", "array", "set", "map", "record",
               "foreign", "any"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True, slots=True)
class Ref:
    """A foreign-key value as Kong renders it: ``{"id": "<uuid>"}``."""

    id: str


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    kind: Kind
    nullable: bool
    default: Any = MISSING
    elements: FieldSpec | None = None
    record: RecordSchema | None = None
    markers: tuple[m.Marker, ...] = ()
    # every class the markers are instances of: `has` is a set lookup (validation asks it
    # for every field of every entity; a declarative file of 20,000 entities asks 1.7M times)
    marker_types: frozenset[type] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "marker_types",
                           frozenset(c for mk in self.markers for c in type(mk).__mro__))

    def marker(self, cls: type[m.MarkerT]) -> m.MarkerT | None:
        for mk in self.markers:
            if isinstance(mk, cls):
                return mk
        return None

    def has(self, cls: type[m.Marker]) -> bool:
        return cls in self.marker_types

    @property
    def required(self) -> bool:
        return not self.nullable

    @property
    def foreign(self) -> m.Foreign | None:
        return self.marker(m.Foreign)

    @property
    def stored(self) -> bool:
        return not self.has(m.Transient)

    def default_value(self) -> Any:
        """A fresh copy of the default (records are expanded to their own defaults)."""
        if self.default is MISSING:
            if self.kind == "record" and self.record is not None and not self.nullable:
                return self.record.defaults()
            return MISSING
        if self.kind == "record" and self.record is not None and self.default is not None:
            return self.record.defaults()
        return _copy(self.default)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(v) for v in value]
    return value


EntityCheck = Callable[[Mapping[str, Any]], "list[tuple[str | None, str]]"]
"""An entity-level check: returns ``(field or None, message)`` pairs; None means ``@entity``."""


@dataclass(frozen=True, slots=True)
class RecordSchema:
    cls: type
    fields: tuple[FieldSpec, ...]
    checks: tuple[EntityCheck, ...] = ()
    by_name: Mapping[str, FieldSpec] = field(default_factory=dict)

    def defaults(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in self.fields:
            if f.has(m.Auto) or f.has(m.Transient):
                continue
            value = f.default_value()
            if value is not MISSING:
                out[f.name] = value
        return out


def compile_record(cls: type, checks: tuple[EntityCheck, ...] = ()) -> RecordSchema:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls, include_extras=True)
    specs = []
    for f in dataclasses.fields(cls):
        default: Any = MISSING
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        specs.append(compile_field(f.name, hints[f.name], default))
    own = tuple(getattr(cls, "__checks__", ()))
    return RecordSchema(cls=cls, fields=tuple(specs), checks=own + checks,
                        by_name={s.name: s for s in specs})


def compile_field(name: str, tp: Any, default: Any = MISSING) -> FieldSpec:
    markers: list[m.Marker] = []
    tp = _strip_annotated(tp, markers)
    nullable = False
    if _is_optional(tp):
        nullable = True
        tp = _strip_annotated(_non_none(tp), markers)
    kind, elements, record = _kind_of(name, tp, markers)
    if kind == "array" and any(isinstance(mk, m.Set) for mk in markers):
        kind = "set"
    return FieldSpec(name=name, kind=kind, nullable=nullable, default=default,
                     elements=elements, record=record, markers=tuple(markers))


def _strip_annotated(tp: Any, markers: list[m.Marker]) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        base, *extra = typing.get_args(tp)
        markers.extend(x for x in extra if isinstance(x, m.Marker))
        tp = base
    return tp


def _is_optional(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return origin in (Union, types.UnionType) and type(None) in typing.get_args(tp)


def _non_none(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if len(args) != 1:
        raise TypeError(f"unsupported union {tp!r}")
    return args[0]


def _kind_of(name: str, tp: Any, markers: list[m.Marker]
             ) -> tuple[Kind, FieldSpec | None, RecordSchema | None]:
    origin = typing.get_origin(tp)
    if tp is str:
        return "string", None, None
    if tp is bool:
        return "boolean", None, None
    if tp is int:
        return "integer", None, None
    if tp is float:
        return "number", None, None
    if tp is Ref:
        if not any(isinstance(mk, m.Foreign) for mk in markers):
            raise TypeError(f"field {name}: Ref needs a Foreign marker")
        return "foreign", None, None
    if tp is Any:
        return "any", None, None
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"field {name}: only tuple[T, ...] is supported")
        return "array", compile_field(name, args[0]), None
    if origin in (Mapping, dict, typing.Mapping):
        key, value = typing.get_args(tp)
        if key is not str:
            raise TypeError(f"field {name}: map keys must be str")
        return "map", compile_field(name, value), None
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return "record", None, compile_record(tp)
    raise TypeError(f"field {name}: unsupported type {tp!r}")
