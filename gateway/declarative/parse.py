"""Parse and validate a declarative configuration into flat, validated entries.

Steps, as in Kong's ``declarative_config.lua``: walk every entity list (top level, or nested
under its parent by the child's table name, the parent reference filled in), give each entry
its id (``ids``), check uniqueness inside the file, resolve references (an id or the parent's
endpoint key, only among the file's own entities), then validate each entry with its entity's
DAO (``values_for``: the same validation as the Admin API, no second validator). Errors are
collected, never the first one only, into Kong's tree that mirrors the input.
Pure: no database access (the store only hands out DAOs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.declarative import ids, order, source
from gateway.declarative.tree import Path, flat_errors, put
from gateway.errors import DbError, FieldErrors, InvalidDeclarativeConfig, SchemaViolation
from gateway.schema import fields as m
from gateway.schema.entity import EntitySchema

if TYPE_CHECKING:  # the store imports the DAOs lazily
    from gateway.db.store import Store

META_KEYS = ("_format_version", "_transform", "_comment", "_ignore")
# a reference that did not resolve is validated as if it pointed here (its error is reported
# once, as Kong's "invalid reference", not again as a missing field)
_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"
# fields whose value may be an env vault reference (Kong's referenceable certificate fields)
VAULT_FIELDS = frozenset({"cert", "cert_alt", "key", "key_alt"})


@dataclass
class Entry:
    entity: str
    path: Path                      # where it was written, for errors
    data: dict[str, Any]            # as written: children and _comment/_ignore removed
    values: dict[str, Any] = field(default_factory=dict)  # validated and normalised
    id_given: bool = True           # False: generated (a clash is reported on its key)
    written: dict[str, Any] = field(default_factory=dict)  # for flattened errors (Kong's)


@dataclass
class Config:
    """A valid declarative configuration: entries per entity, in import order."""

    entries: dict[str, list[Entry]]
    meta: dict[str, Any]

    def rows(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Kong's ``POST /config`` answer: ``{entity: {id: entity}}``."""
        return {name: {e.values["id"]: e.values for e in entries}
                for name, entries in self.entries.items() if entries}


def parse_text(store: Store, text: str | bytes, env: Mapping[str, str] | None = None) -> Config:
    return Parser(store, env).parse(source.load_text(text))


class Parser:
    def __init__(self, store: Store, env: Mapping[str, str] | None = None) -> None:
        self.store = store
        self.env = env
        reg = store.registry
        self.schemas = {n: e for n, e in reg.entities.items() if reg.entity_plugin_enabled(e)}
        self.order = order.import_order(self.schemas)
        self.children = order.child_keys(self.schemas)
        self.entries: dict[str, list[Entry]] = {name: [] for name in self.order}
        self.errors: FieldErrors = {}
        self.ref_errors: dict[str, dict[str, list[str]]] = {}
        self.flattened: list[dict[str, Any]] = []
        self.migrate_paths = False

    def parse(self, doc: Mapping[str, Any]) -> Config:
        meta = self._meta(doc)
        for name in self.order:
            if name in doc:
                self._walk(name, doc[name], (name,), None)
        self._unique()
        self._references()
        self._validate()
        self._unique_cache_keys()
        self._raise_if_invalid()
        return Config(self.entries, meta)

    # ------------------------------------------------------------------ structure
    def _meta(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        version = doc.get("_format_version")
        if version is None:
            self._put(("_format_version",), "required field missing")
        elif version not in source.FORMAT_VERSIONS:
            self._put(("_format_version",), "expected one of: "
                      + ", ".join(source.FORMAT_VERSIONS))
        self.migrate_paths = version in ("1.1", "2.1")
        checks = {"_transform": (bool, "expected a boolean"),
                  "_comment": (str, "expected a string"), "_ignore": (list, "expected an array")}
        for key, (kind, message) in checks.items():
            if key in doc and not isinstance(doc[key], kind):
                self._put((key,), message)
        for key in doc:
            if key not in META_KEYS and key not in self.schemas:
                self._put((key,), "unknown field")
        return {"_format_version": source.CURRENT,
                "_transform": doc.get("_transform", True)}

    def _walk(self, entity: str, items: Any, path: Path,
              parent: tuple[str, str] | None) -> None:
        if items is None or (isinstance(items, dict) and not items):
            return  # `services:` with nothing after it; Lua cannot tell {} from []
        if not isinstance(items, list):
            self._put(path, "expected an array")
            return
        schema = self.schemas[entity]
        child_key, parent_id = parent if parent else (None, None)
        for i, raw in enumerate(items):
            at = (*path, i)
            if entity == "snis" and parent and isinstance(raw, str):
                raw = {"name": raw}  # `snis: [a.test]` under a certificate
            if not isinstance(raw, dict):
                self._put(at, "expected a record")
                continue
            data, children = self._split(schema, raw, at)
            if self.migrate_paths and entity == "routes" and isinstance(data.get("paths"), list):
                data["paths"] = [source.migrate_path(p) for p in data["paths"]]
            given = "id" in data
            written = dict(data)
            ident = ids.assign(schema, data, parent_id, child_key)
            if ident is not None:
                data["id"] = ident
            if child_key is not None:
                data[child_key] = written[child_key] = {"id": parent_id}
            self.entries[entity].append(Entry(entity, at, data, id_given=given,
                                              written=written))
            for child, value in children.items():
                if ident is not None:
                    self._walk(child, value, (*at, child), (self.children[entity][child], ident))

    def _split(self, schema: EntitySchema, raw: Mapping[str, Any], at: Path
               ) -> tuple[dict[str, Any], dict[str, Any]]:
        data: dict[str, Any] = {}
        children: dict[str, Any] = {}
        nested = self.children.get(schema.name, {})
        for key, value in raw.items():
            if key == "_comment":
                if not isinstance(value, str):
                    self._put((*at, key), "expected a string")
            elif key == "_ignore":
                if not isinstance(value, list):
                    self._put((*at, key), "expected an array")
            elif key in nested and not (key in schema.record.by_name
                                        and schema.field(key).stored):
                children[key] = value
            else:
                data[key] = value
        return data, children

    # ------------------------------------------------------------------ file-wide rules
    def _unique(self) -> None:
        for entity, entries in self.entries.items():
            schema = self.schemas[entity]
            unique = ("id", *schema.unique_fields)
            seen: dict[tuple[str, Any], bool] = {}
            for entry in entries:
                for name in unique:
                    value = entry.data.get(name)
                    if value is None or isinstance(value, (dict, list)):
                        continue
                    if (name, value) in seen and (name != "id" or entry.id_given):
                        what = "primary key" if name == "id" else name
                        self._entry_error(entry, f"uniqueness violation: '{entity}' entity "
                                                 f"with {what} set to '{value}' already declared")
                    seen[(name, value)] = True

    def _references(self) -> None:
        by_id: dict[str, dict[str, Entry]] = {}
        by_key: dict[str, dict[str, Entry]] = {}
        for entity, entries in self.entries.items():
            ek = self.schemas[entity].endpoint_key
            for entry in entries:
                if isinstance(entry.data.get("id"), str):
                    by_id.setdefault(entity, {})[entry.data["id"]] = entry
                if ek and isinstance(entry.data.get(ek), str):
                    by_key.setdefault(entity, {})[entry.data[ek]] = entry
        for entity, entries in self.entries.items():
            for entry in entries:
                for spec in self.schemas[entity].foreign_fields:
                    assert spec.foreign is not None
                    self._resolve(entry, spec.name, spec.foreign.entity, by_id, by_key)

    def _resolve(self, entry: Entry, name: str, parent: str,
                 by_id: dict[str, dict[str, Entry]], by_key: dict[str, dict[str, Entry]]
                 ) -> None:
        value = entry.data.get(name)
        if value is None:
            return
        lookup = value
        if isinstance(value, dict):
            ek = self.schemas[parent].endpoint_key if parent in self.schemas else None
            if "id" in value:
                lookup = value["id"]
            elif ek is not None and list(value) == [ek]:
                lookup = value[ek]
            else:
                return  # neither id nor endpoint key: validation says "missing primary key"
        if not isinstance(lookup, str):
            return
        found = by_key.get(parent, {}).get(lookup) or by_id.get(parent, {}).get(lookup.lower())
        if found is not None:
            entry.data[name] = {"id": found.data["id"]}
            return
        shown = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        message = f"invalid reference '{name}: {shown}' (no such entry in '{parent}')"
        schema = self.schemas[entry.entity]
        at = entry.data.get(schema.endpoint_key) if schema.endpoint_key else None
        if not isinstance(at, str):
            at = str(entry.data.get("id"))
        self.ref_errors.setdefault(entry.entity, {}).setdefault(at, []).append(message)
        self._flat(entry, {"@entity": [message]})
        entry.data[name] = {"id": _PLACEHOLDER}

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        for entity in self.order:
            dao = self.store.dao(entity)
            for entry in self.entries[entity]:
                data = self._vault(entry)
                try:
                    prepared = dao.prepare(dict(data), "upsert")
                    entry.values = dao.values_for("upsert", data.get("id"), prepared, None)
                except SchemaViolation as exc:
                    self._entry_error(entry, exc.fields)
                except DbError as exc:
                    self._entry_error(entry, {"@entity": [exc.message]})

    def _vault(self, entry: Entry) -> dict[str, Any]:
        """Env vault references resolved (the stored value is the secret itself)."""
        schema = self.schemas[entry.entity]
        errors: FieldErrors = {}
        for name, value in list(entry.data.items()):
            spec = schema.record.by_name.get(name)
            if name in VAULT_FIELDS or (spec is not None and spec.has(m.Secret)):
                resolved, err = source.resolve_reference(value, self.env)
                if err is not None:
                    errors[name] = err
                entry.data[name] = resolved
        if errors:
            self._entry_error(entry, errors)
        return entry.data

    def _unique_cache_keys(self) -> None:
        """Kong's composite uniqueness (a plugin per name and scope, a target per upstream,
        ...), on the validated values."""
        for entity in self.order:
            schema = self.schemas[entity]
            if not schema.cache_key:
                continue
            dao = self.store.dao(entity)
            seen: set[str] = set()
            for entry in self.entries[entity]:
                if not entry.values:
                    continue  # invalid: already reported
                key = dao.cache_key(entry.values)
                if key in seen:
                    shown = ", ".join(f"{k}={_short(entry.values.get(k))}"
                                      for k in schema.cache_key)
                    self._entry_error(entry, f"uniqueness violation: '{entity}' entity with "
                                             f"{shown} already declared")
                seen.add(key)

    # ------------------------------------------------------------------ errors
    def _entry_error(self, entry: Entry, err: FieldErrors | str) -> None:
        """``err``: field errors, or one message about the whole entry (Kong puts such a
        message, a uniqueness violation, in the entry's place)."""
        self._put(entry.path, err)
        self._flat(entry, err if isinstance(err, dict) else {"@entity": [err]})

    def _flat(self, entry: Entry, fields: FieldErrors) -> None:
        """One entry of Kong's ``flattened_errors``: the entry as written, and its errors."""
        written = entry.written or entry.data
        item: dict[str, Any] = {"entity_type": _singular(entry.entity), "entity": written}
        name = written.get("name", written.get("username"))
        for key, value in (("entity_id", written.get("id")), ("entity_name", name),
                           ("entity_tags", written.get("tags"))):
            if value is not None:
                item[key] = value
        item["errors"] = flat_errors(fields)
        self.flattened.append(item)

    def _put(self, path: Path, err: Any) -> None:
        put(self.errors, path, err)

    def _raise_if_invalid(self) -> None:
        if not self.errors and not self.ref_errors:
            return
        fields = self.errors
        for entity, errs in self.ref_errors.items():
            # Kong keys reference errors by the entry's name or id; reported alongside the
            # schema errors whenever the two do not share an entity list
            if entity not in fields:
                fields[entity] = errs
        raise InvalidDeclarativeConfig(fields, self.flattened)


def _singular(entity: str) -> str:
    return entity[:-1] if entity.endswith("s") else entity


def _short(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("id")
    return "null" if value is None else str(value)
