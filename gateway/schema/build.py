"""Turn validated JSON-shaped values into the frozen dataclass instances they were declared as.

The snapshot (and the settings) hold these typed, immutable records; arrays become tuples,
maps become read-only mappings, foreign keys become ``Ref``.

Each record schema is compiled once into one converter per field (none for a scalar): a
snapshot of 10,000 routes builds 10,000 records without asking every field its kind again.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from gateway.schema import fields as m
from gateway.schema.compile import FieldSpec, RecordSchema, Ref

Convert = Callable[[Any], Any]  # a value (never None) -> its typed form
Plan = tuple[tuple[str, Convert | None], ...]

# record -> its plan (the record kept: its id cannot be reused while cached)
_PLANS: dict[int, tuple[RecordSchema, Plan]] = {}


def build(schema: RecordSchema, values: dict[str, Any]) -> Any:
    kwargs = {}
    for name, convert in _plan(schema):
        if name in values:
            value = values[name]
            kwargs[name] = value if convert is None or value is None else convert(value)
    return schema.cls(**kwargs)


def _plan(schema: RecordSchema) -> Plan:
    hit = _PLANS.get(id(schema))
    if hit is None:
        hit = _PLANS[id(schema)] = (schema, tuple((spec.name, _converter(spec))
                                                  for spec in schema.fields))
    return hit[1]


def _converter(spec: FieldSpec) -> Convert | None:
    """None: the value is kept as it is (a scalar)."""
    kind = spec.kind
    if kind in ("array", "set"):
        assert spec.elements is not None
        inner = _converter(spec.elements)
        if inner is None:
            return tuple
        return lambda v: tuple(None if x is None else inner(x) for x in v)
    if kind == "map":
        assert spec.elements is not None
        each = _converter(spec.elements)
        if each is None:
            return lambda v: MappingProxyType(dict(v))
        return lambda v: MappingProxyType({k: None if x is None else each(x)
                                           for k, x in v.items()})
    if kind == "record" and spec.record is not None and not spec.has(m.PluginConfig):
        record = spec.record
        return lambda v: build(record, v)
    if kind == "foreign":
        return lambda v: Ref(v["id"])
    if kind == "record":  # plugin config: the plugin builds its own typed view
        return lambda v: MappingProxyType(dict(v))
    return None
