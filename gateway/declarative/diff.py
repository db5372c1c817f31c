"""What applying a declarative file would do to the current configuration: entities created,
changed (field by field) and deleted (present now, absent from the file: ``POST /config``
removes them, ``db_import`` keeps them). Timestamps are not changes. Secrets are masked in the
rendering, never compared as masks. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.declarative.parse import Config
from gateway.schema.compile import RecordSchema
from gateway.schema.entity import EntitySchema
from gateway.schema.redact import MASK, masked

IGNORED = frozenset({"created_at", "updated_at"})


@dataclass(frozen=True)
class Change:
    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class EntityDiff:
    action: str  # create | change | delete
    entity: str
    id: str
    name: str | None
    changes: tuple[Change, ...] = ()


@dataclass
class Diff:
    items: list[EntityDiff] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for i in self.items if i.action == action)

    @property
    def empty(self) -> bool:
        return not self.items


def compare(schemas: Mapping[str, EntitySchema], plugins: Mapping[str, RecordSchema],
            config: Config, current: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> Diff:
    out = Diff()
    for name, entries in config.entries.items():
        schema = schemas[name]
        stored = [f.name for f in schema.stored_fields if f.name not in IGNORED]
        have = current.get(name, {})
        wanted: set[str] = set()
        for entry in entries:
            new = {k: entry.values.get(k) for k in stored}
            ident = str(new["id"])
            wanted.add(ident)
            old = have.get(ident)
            label = _label(schema, new)
            if old is None:
                out.items.append(EntityDiff("create", name, ident, label))
                continue
            changes = _changes(schema, plugins, {k: old.get(k) for k in stored}, new)
            if changes:
                out.items.append(EntityDiff("change", name, ident, label, tuple(changes)))
        for ident, old in have.items():
            if ident not in wanted:
                out.items.append(EntityDiff("delete", name, ident, _label(schema, old)))
    for name, rows in current.items():
        if name not in config.entries:
            schema = schemas[name]
            out.items.extend(EntityDiff("delete", name, i, _label(schema, r))
                             for i, r in rows.items())
    return out


def _label(schema: EntitySchema, row: Mapping[str, Any]) -> str | None:
    for key in (schema.endpoint_key, "name", "username", "group", "subject_name"):
        if key and isinstance(row.get(key), str):
            return str(row[key])
    return None


def _changes(schema: EntitySchema, plugins: Mapping[str, RecordSchema],
             old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Field-level changes; records (plugin ``config``, nested records) by sub-field."""
    shown_old = masked(schema.record, old, plugins)
    shown_new = masked(schema.record, new, plugins)
    out: list[Change] = []
    _walk("", old, new, shown_old, shown_new, out)
    return out


def _walk(prefix: str, old: Any, new: Any, shown_old: Any, shown_new: Any,
          out: list[Change]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping) and not _is_ref(old, new):
        for key in sorted(set(old) | set(new)):
            so = shown_old.get(key) if isinstance(shown_old, Mapping) else MASK
            sn = shown_new.get(key) if isinstance(shown_new, Mapping) else MASK
            _walk(f"{prefix}{key}.", old.get(key), new.get(key), so, sn, out)
        return
    if _canon(old) != _canon(new):
        out.append(Change(prefix.rstrip("."), shown_old, shown_new))


def _is_ref(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return set(old) == {"id"} or set(new) == {"id"}


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def render(diff: Diff) -> str:
    lines: list[str] = []
    signs = {"create": "+", "change": "~", "delete": "-"}
    for item in diff.items:
        name = f" ({item.name})" if item.name else ""
        lines.append(f"{signs[item.action]} {item.action} {item.entity} {item.id}{name}")
        for ch in item.changes:
            lines.append(f"    {ch.field}: {_show(ch.old)} -> {_show(ch.new)}")
    lines.append(f"{diff.count('create')} to create, {diff.count('change')} to change, "
                 f"{diff.count('delete')} to delete")
    return "\n".join(lines) + "\n"


def _show(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)
