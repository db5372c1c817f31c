"""Validate JSON-shaped input against a ``RecordSchema`` with Kong's rules and messages.

``validate(schema, data)`` fills defaults, checks types and markers field by field, runs the
entity checks whose fields are valid, and returns the normalised record (every field present,
unset ones ``None``) or raises ``SchemaViolation`` with Kong's nested error tree.
Pure: no I/O, safe to run anywhere (Admin API, declarative import, settings).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import FieldErrors, SchemaViolation
from gateway.schema import fields as m
from gateway.schema.compile import MISSING, EntityCheck, FieldSpec, RecordSchema

_TYPE_ERRORS = {
    "string": "expected a string",
    "integer": "expected an integer",
    "number": "expected a number",
    "boolean": "expected a boolean",
    "array": "expected an array",
    "set": "expected a set",
    "map": "expected a map",
    "record": "expected a record",
    "foreign": "expected a record",
}

REQUIRED = "required field missing"


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on what one stored value may hold, so that every write validates in time linear in
    its size and every string fits a database index: a field's ``LenMax`` overrides them.

    ``string``: characters. PostgreSQL refuses a btree index row over 2,704 bytes; 512
    characters are at most 2,048 bytes of UTF-8, enough for a unique name, a tag or a
    ``cache_key`` part. ``elements``: entries of one array, set or map (tags included; Kong
    has no cap, 1,000 is Kong's own cap on form fields per request)."""

    string: int = 512
    elements: int = 1000


ENTITY_LIMITS = Limits()


@dataclass(frozen=True)
class Context:
    """What validation may need beyond the value itself (kept explicit to stay pure).
    ``limits`` is None for trusted input (the settings file)."""

    plugin_schemas: Mapping[str, RecordSchema] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    limits: Limits | None = None


def validate(schema: RecordSchema, data: Mapping[str, Any], *, ctx: Context | None = None,
             checks: tuple[EntityCheck, ...] = ()) -> dict[str, Any]:
    """Full validation (insert, upsert, merged update). ``checks`` are extra top-level entity
    checks (a plugin's checks over the whole plugin row)."""
    out, errors = _record(schema, data, ctx or Context(), checks)
    if errors:
        raise SchemaViolation(errors)
    return out


def field_error(spec: FieldSpec, value: Any, ctx: Context | None = None) -> Any:
    """The error one value would get in ``spec`` (None when valid)."""
    _, err = _value(spec, value, ctx or Context(), {})
    return err


def check_types(schema: RecordSchema, data: Mapping[str, Any], *,
                ctx: Context | None = None) -> None:
    """Validate only the fields present (the first step of a PATCH, before merging)."""
    errors: FieldErrors = {}
    context = ctx or Context()
    for key, value in data.items():
        spec = schema.by_name.get(key)
        if spec is None:
            errors[key] = "unknown field"
            continue
        if value is None:
            if spec.required and not spec.has(m.Auto):
                errors[key] = REQUIRED
            continue
        if spec.has(m.PluginConfig):
            continue  # needs the plugin name: checked on the merged record
        _, err = _value(spec, value, context, data)
        if err is not None:
            errors[key] = err
    if errors:
        raise SchemaViolation(errors)


def _record(schema: RecordSchema, data: Mapping[str, Any], ctx: Context,
            checks: tuple[EntityCheck, ...] = ()) -> tuple[dict[str, Any], FieldErrors]:
    errors: FieldErrors = {}
    out: dict[str, Any] = {}
    for key in data:
        if key not in schema.by_name:
            errors[key] = "unknown field"
    for spec in schema.fields:
        value = data.get(spec.name, MISSING)
        if value is MISSING:
            value = spec.default_value()
            if value is MISSING:
                value = None
        if value is None:
            if spec.required and not spec.has(m.Auto):
                errors[spec.name] = REQUIRED
            out[spec.name] = None
            continue
        normalised, err = _value(spec, value, ctx, data)
        if err is not None:
            errors[spec.name] = err
        out[spec.name] = normalised
    _entity_checks(schema.checks + checks, out, errors)
    return out, errors


def _entity_checks(checks: tuple[EntityCheck, ...], values: dict[str, Any],
                   errors: FieldErrors) -> None:
    for check in checks:
        involved: tuple[str, ...] = getattr(check, "fields", ())
        if not getattr(check, "always", False) and any(
                f.split(".", 1)[0] in errors for f in involved):
            continue
        for fld, message in check(values):
            if fld is None:
                errors.setdefault("@entity", []).append(message)
            elif fld not in errors:
                errors[fld] = message


def _value(spec: FieldSpec, value: Any, ctx: Context, parent: Mapping[str, Any]
           ) -> tuple[Any, Any]:
    """Returns ``(normalised, error)``; ``error`` is a str, list or dict, or None."""
    kind = spec.kind
    if kind == "any":
        return value, None
    if spec.has(m.PluginConfig):
        return _plugin_config(value, ctx, parent)
    checker = _KINDS[kind]
    return checker(spec, value, ctx)


def _string(spec: FieldSpec, value: Any, ctx: Context) -> tuple[Any, Any]:
    if not isinstance(value, str):
        return value, _TYPE_ERRORS["string"]
    if "\x00" in value:  # PostgreSQL text cannot hold NUL
        return value, "invalid value: must not contain NUL characters"
    if spec.has(m.Uuid):
        if not is_uuid(value):
            return value, "expected a valid UUID"
        value = value.lower()  # PostgreSQL's uuid type compares (and prints) lower case
    len_min = spec.marker(m.LenMin)
    minimum = len_min.n if len_min else (0 if spec.has(m.AllowEmpty) else 1)
    if len(value) < minimum:
        return value, f"length must be at least {minimum}"
    maximum = _maximum(spec, ctx, "string")
    if maximum is not None and len(value) > maximum:
        return value, f"length must be at most {maximum}"
    return value, _markers(spec, value)


def _maximum(spec: FieldSpec, ctx: Context, kind: str) -> int | None:
    """A string's characters or a container's entries: the field's own ``LenMax``, else the
    context's limit (checked before any element is looked at)."""
    len_max = spec.marker(m.LenMax)
    if len_max is not None:
        return len_max.n
    if ctx.limits is None:
        return None
    return ctx.limits.string if kind == "string" else ctx.limits.elements


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _integer(spec: FieldSpec, value: Any, ctx: Context) -> tuple[Any, Any]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value, _TYPE_ERRORS["integer"]
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            return value, _TYPE_ERRORS["integer"]
        value = int(value)
    if not INT64_MIN <= value <= INT64_MAX:  # the column is a BIGINT
        return value, f"value should be between {INT64_MIN} and {INT64_MAX}"
    if spec.has(m.Timestamp) and value <= 0:
        return value, "expected a valid timestamp"
    return value, _markers(spec, value)


def _number(spec: FieldSpec, value: Any, ctx: Context) -> tuple[Any, Any]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value, _TYPE_ERRORS["number"]
    if isinstance(value, float) and not math.isfinite(value):
        return value, _TYPE_ERRORS["number"]
    if spec.has(m.Timestamp) and value <= 0:
        return value, "expected a valid timestamp"
    return value, _markers(spec, value)


def _boolean(spec: FieldSpec, value: Any, ctx: Context) -> tuple[Any, Any]:
    if not isinstance(value, bool):
        return value, _TYPE_ERRORS["boolean"]
    return value, None


def _array(spec: FieldSpec, value: Any, ctx: Context) -> tuple[Any, Any]:
    if isinstance(value, dict) and not value:
        value = []  # Lua cannot tell {} from []: Kong accepts an empty object here
    if not isinstance(value, (list, tuple)):
        return value, _TYPE_ERRORS[spec.kind]
    assert spec.elements is not None
    maximum = _maximum(spec, ctx, "elements")
    if maximum is not None and len(value) > maximum:
        return value, f"length must be at most {maximum}"
    items: list[Any] = []
    errs: list[Any] = []
    for item in value:
        if item is None:
            normalised, err = item, _TYPE_ERRORS.get(spec.elements.kind, REQUIRED)
        else:
            normalised, err = _value(spec.elements, item, ctx, {})
        items.append(normalised)
        errs.append(err)
    if any(e is not None for e in errs):
        while errs and errs[-1] is None:
            errs.pop()
        return value, errs
    if spec.kind == "set":
        items = _distinct(items)
    len_min = spec.marker(m.LenMin)
    if len_min and len(items) < len_min.n:
        return items, f"length must be at least {len_min.n}"
    return items, _markers(spec, items)


def _distinct(items: list[Any]) -> list[Any]:
    """First-seen order without duplicates, by hashing (a list scan per item is quadratic:
    30,000 tags took seconds). Records are compared by their canonical JSON."""
    seen: set[Any] = set()
    out: list[Any] = []
    for item in items:
        key = ("json", json.dumps(item, sort_keys=True, default=str)) \
            if isinstance(item, (dict, list)) else item
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _map(spec: FieldSpec, value: Any, ctx: Context) -> tuple[Any, Any]:
    if not isinstance(value, dict):
        return value, _TYPE_ERRORS["map"]
    assert spec.elements is not None
    maximum = _maximum(spec, ctx, "elements")
    if maximum is not None and len(value) > maximum:
        return value, f"length must be at most {maximum}"
    key_error = _map_keys(value, ctx)
    if key_error is not None:
        return value, key_error
    out: dict[str, Any] = {}
    for key, item in value.items():
        # Kong reports a map's first failing value as the whole field's error
        normalised, err = _value(spec.elements, item, ctx, {})
        if err is not None:
            return value, err
        out[key] = normalised
    return out, _markers(spec, out)


def _map_keys(value: Mapping[str, Any], ctx: Context) -> str | None:
    """Map keys are stored in JSON (PostgreSQL's JSONB cannot hold NUL), so they obey the
    string rules too."""
    longest = ctx.limits.string if ctx.limits else None
    for key in value:
        if "\x00" in key:
            return "invalid key: must not contain NUL characters"
        if longest is not None and len(key) > longest:
            return f"key length must be at most {longest}"
    return None


def _sub_record(spec: FieldSpec, value: Any, ctx: Context) -> tuple[Any, Any]:
    if not isinstance(value, dict):
        return value, _TYPE_ERRORS["record"]
    assert spec.record is not None
    out, errs = _record(spec.record, value, ctx)
    return out, (errs or _markers(spec, out))


def _foreign(spec: FieldSpec, value: Any, ctx: Context) -> tuple[Any, Any]:
    if not isinstance(value, dict):
        return value, _TYPE_ERRORS["foreign"]
    # Kong validates only the primary key of a reference and ignores its other fields
    # (``{"protocol": "http"}`` and ``{"name": null}`` are both a missing primary key)
    errs: dict[str, Any] = {}
    ident = value.get("id")
    if ident is None:
        errs["id"] = "missing primary key"
    elif not isinstance(ident, str):
        errs["id"] = "expected a string"
    elif not is_uuid(ident):
        errs["id"] = "expected a valid UUID"
    if errs or not isinstance(ident, str):
        return value, errs
    return {"id": ident.lower()}, None


def _plugin_config(value: Any, ctx: Context, parent: Mapping[str, Any]) -> tuple[Any, Any]:
    name = parent.get("name")
    schema = ctx.plugin_schemas.get(name) if isinstance(name, str) else None
    if schema is None:
        return value, None  # the `name` field carries the error
    if not isinstance(value, dict):
        return value, _TYPE_ERRORS["record"]
    out, errs = _record(schema, value, ctx)
    return out, (errs or None)


def _markers(spec: FieldSpec, value: Any) -> str | None:
    for mk in spec.markers:
        if isinstance(mk, m.Between):
            if not (mk.lo <= value <= mk.hi):
                return f"value should be between {_num(mk.lo)} and {_num(mk.hi)}"
        elif isinstance(mk, m.OneOf):
            if value not in mk.values:
                return "expected one of: " + ", ".join(str(v) for v in mk.values)
        elif isinstance(mk, m.Check):
            err = mk.fn(value)
            if err is not None:
                return err
    return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


_KINDS: dict[str, Callable[[FieldSpec, Any, Context], tuple[Any, Any]]] = {
    "string": _string,
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
    "array": _array,
    "set": _array,
    "map": _map,
    "record": _sub_record,
    "foreign": _foreign,
}


def is_uuid(value: str) -> bool:
    if len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
