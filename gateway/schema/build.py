"""Turn validated JSON-shaped values into the frozen dataclass instances they were declared as.

The snapshot (and the settings) hold these typed, immutable records; arrays become tuples,
maps become read-only mappings, foreign keys become ``Ref``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from gateway.schema import fields as m
from gateway.schema.compile import FieldSpec, RecordSchema, Ref


def build(schema: RecordSchema, values: dict[str, Any]) -> Any:
    kwargs = {spec.name: _convert(spec, values.get(spec.name))
              for spec in schema.fields if spec.name in values}
    return schema.cls(**kwargs)


def _convert(spec: FieldSpec, value: Any) -> Any:
    if value is None:
        return None
    if spec.kind in ("array", "set"):
        assert spec.elements is not None
        elements = spec.elements
        return tuple(_convert(elements, v) for v in value)
    if spec.kind == "map":
        assert spec.elements is not None
        elements = spec.elements
        return MappingProxyType({k: _convert(elements, v) for k, v in value.items()})
    if spec.kind == "record" and spec.record is not None and not spec.has(m.PluginConfig):
        return build(spec.record, value)
    if spec.kind == "foreign":
        return Ref(value["id"])
    if spec.kind == "record":  # plugin config: the plugin builds its own typed view
        return MappingProxyType(dict(value))
    return value
