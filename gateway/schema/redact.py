"""Values with key material masked, for records that leave the write path (the audit log).

Three rules, any one of which masks a value as ``******``: the field is marked ``Secret`` in its
schema (walked through nested records, arrays of records and a plugin's ``config``); the field
is named ``key`` or ``key_alt`` wherever it appears (also where no schema describes the value);
or the value, anywhere, contains a PEM private key marker. The last rule is the net under the
other two: a key pasted into the wrong field, or appended to a certificate bundle, is caught.
Pure: no I/O, linear in the size of the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway.schema import fields as m
from gateway.schema.compile import FieldSpec, RecordSchema

MASK = "******"
SECRET_NAMES = frozenset({"key", "key_alt"})
# `BEGIN RSA PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`, ...; `+` as a form body may leave it
PRIVATE_KEY = re.compile(r"PRIVATE[\s+]KEY", re.IGNORECASE)


def has_private_key(text: str) -> bool:
    return PRIVATE_KEY.search(text) is not None


MAX_VALUES = 5_000  # a body with more values is recorded by field name only
TOO_LARGE = "(too large to record)"


def masked(record: RecordSchema | None, data: Mapping[str, Any],
           plugins: Mapping[str, RecordSchema] | None = None,
           plugin: str | None = None) -> dict[str, Any]:
    """``data`` (a write body) with every secret masked. ``plugins`` are the plugin config
    schemas; ``plugin`` names the one ``config`` follows when ``data`` has no ``name``.
    A hostile body (100,000 tags) costs a bounded count here, not a walk of all of it: this
    runs on the event loop the proxy shares."""
    if more_values_than(data, MAX_VALUES):
        return {scrub(key): TOO_LARGE for key in data}
    name = data.get("name")
    chosen = (plugins or {}).get(name if isinstance(name, str) else plugin or "")
    return _record(record, data, chosen)


def _record(record: RecordSchema | None, data: Mapping[str, Any],
            plugin: RecordSchema | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        spec = record.by_name.get(key) if record is not None and isinstance(key, str) else None
        out[scrub(key)] = _field(spec, key, value, plugin)
    return out


def _field(spec: FieldSpec | None, key: Any, value: Any, plugin: RecordSchema | None) -> Any:
    if key in SECRET_NAMES and value is not None:
        return MASK
    if spec is not None and spec.has(m.PluginConfig) and isinstance(value, Mapping):
        return _record(plugin, value, None)
    return _value(spec, value)


def _value(spec: FieldSpec | None, value: Any) -> Any:
    if spec is None or value is None:
        return scrub(value)
    if spec.has(m.Secret):
        return MASK
    if spec.record is not None and isinstance(value, Mapping):
        return _record(spec.record, value, None)
    if spec.elements is not None and isinstance(value, list):
        return [_value(spec.elements, v) for v in value]
    if spec.elements is not None and isinstance(value, Mapping):
        return {scrub(k): _value(spec.elements, v) for k, v in value.items()}
    return scrub(value)


def more_values_than(value: Any, limit: int) -> bool:
    """Whether ``value`` holds more than ``limit`` values at any depth; stops counting at
    ``limit``, so its cost is bounded whatever the size of ``value``."""
    stack = [value]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item[:limit + 1 - seen])
    return False


def scrub(value: Any) -> Any:
    """Schema-free masking: names in ``SECRET_NAMES`` and private-key text, at any depth."""
    if isinstance(value, str):
        return MASK if has_private_key(value) else value
    if isinstance(value, Mapping):
        return {scrub(k): MASK if k in SECRET_NAMES and v is not None else scrub(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value
