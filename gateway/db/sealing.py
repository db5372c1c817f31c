"""Which values of a row are secrets, and one walk that seals, opens or drops them.

A secret is any string field marked ``m.Secret`` in an entity schema, or in a plugin's config
schema (the plugin ``config`` record is chosen by the row's ``name``), at any depth, alone or
as the elements of an array. The walk names each value by its column label (``key``,
``config.client_secret``), which is also what binds its ciphertext to its place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.keyring import Keyring, aad, open_value
from gateway.schema import fields as m
from gateway.schema.compile import FieldSpec, RecordSchema
from gateway.schema.entity import EntitySchema

DROP: Any = object()  # returned by a walk function: leave the value out of the row
# (value, label) -> new value; None comes in for an unset secret (only dropping cares)
SecretFn = Callable[[str | None, str], Any]
PluginSchemas = Mapping[str, RecordSchema]


def record_has_secrets(record: RecordSchema) -> bool:
    return any(_spec_has_secrets(spec) for spec in record.fields)


def _spec_has_secrets(spec: FieldSpec) -> bool:
    if spec.has(m.Secret) or (spec.elements is not None and spec.elements.has(m.Secret)):
        return True
    return spec.record is not None and record_has_secrets(spec.record)


def entity_has_secrets(entity: EntitySchema, plugins: PluginSchemas) -> bool:
    if record_has_secrets(entity.record):
        return True
    return any(f.has(m.PluginConfig) for f in entity.fields) and \
        any(record_has_secrets(schema) for schema in plugins.values())


def map_secrets(record: RecordSchema, values: Mapping[str, Any], fn: SecretFn,
                plugins: PluginSchemas, prefix: str = "") -> dict[str, Any]:
    """A copy of ``values`` with ``fn`` applied to every secret string (``DROP``: the whole
    field is left out)."""
    out = dict(values)
    for key in _secret_keys(record):  # the other fields are copied as they are
        if key not in values:
            continue
        new = _map_field(record.by_name[key], values, values[key], fn, plugins, prefix + key)
        if new is DROP:
            del out[key]
        else:
            out[key] = new
    return out


# record -> the fields a walk visits (the record kept: its id cannot be reused while cached)
_SECRET_KEYS: dict[int, tuple[RecordSchema, tuple[str, ...]]] = {}


def _secret_keys(record: RecordSchema) -> tuple[str, ...]:
    """The fields that may hold a secret: a certificate row has one of eight, and a load of
    10,000 rows walks only that one."""
    hit = _SECRET_KEYS.get(id(record))
    if hit is None:
        keys = tuple(f.name for f in record.fields
                     if _spec_has_secrets(f) or f.has(m.PluginConfig))
        hit = _SECRET_KEYS[id(record)] = (record, keys)
    return hit[1]


def _map_field(spec: FieldSpec, row: Mapping[str, Any], value: Any, fn: SecretFn,
               plugins: PluginSchemas, label: str) -> Any:
    is_secret = spec.has(m.Secret) or (spec.elements is not None
                                       and spec.elements.has(m.Secret))
    if is_secret and (value is None or isinstance(value, str)):
        return fn(value, label)
    if value is None:
        return None
    if is_secret and isinstance(value, (list, tuple)):
        if fn(None, label) is DROP:  # dropping takes the whole array, even an empty one
            return DROP
        return [fn(v, f"{label}.{i}") if isinstance(v, str) else v
                for i, v in enumerate(value)]
    record = spec.record
    if spec.has(m.PluginConfig):
        record = plugins.get(str(row.get("name")))
    if record is not None and isinstance(value, Mapping) and record_has_secrets(record):
        return map_secrets(record, value, fn, plugins, label + ".")
    return value


def seal_row(entity: EntitySchema, keyring: Keyring | None, values: Mapping[str, Any],
             plugins: PluginSchemas) -> dict[str, Any]:
    """Every secret sealed under the current key (unchanged without a keyring)."""
    if keyring is None:
        return dict(values)
    ident = str(values["id"])

    def sealed(value: str | None, label: str) -> str | None:
        return None if value is None else keyring.seal(value, aad(entity.name, label, ident))

    return map_secrets(entity.record, values, sealed, plugins)


def open_row(entity: EntitySchema, keyring: Keyring | None, values: Mapping[str, Any],
             plugins: PluginSchemas, patch: Mapping[str, Any] | None = None
             ) -> dict[str, Any]:
    """Every secret opened; raises ``SecretUnavailable`` naming the entity, row and key id.
    Values that ``patch`` replaces are left as stored: a PATCH that brings a new key can
    fix a row whose old key this node cannot decrypt."""
    ident = str(values["id"])
    what = entity.name.rstrip("s") if entity.name.endswith("s") else entity.name

    def opened(value: str | None, label: str) -> Any:
        if value is None or (patch is not None and replaced(patch, label)):
            return value
        return open_value(keyring, value, aad(entity.name, label, ident),
                          f"{what} {ident} {label}")

    return map_secrets(entity.record, values, opened, plugins)


def drop_secrets(entity: EntitySchema, values: Mapping[str, Any],
                 plugins: PluginSchemas) -> dict[str, Any]:
    """The row without its secrets (``admin_return_keys: false``)."""
    return map_secrets(entity.record, values, lambda _v, _label: DROP, plugins)


def replaced(patch: Mapping[str, Any], label: str) -> bool:
    """Whether a PATCH body replaces the value at ``label`` (records merge field by field;
    anything else, arrays included, is replaced whole)."""
    node: Any = patch
    for part in label.split("."):
        if not isinstance(node, Mapping):
            return True  # an array or a scalar given in place of the record: replaced
        if part not in node:
            return False
        node = node[part]
    return True
