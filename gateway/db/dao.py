"""Generic DAO: Kong's CRUD semantics for any entity schema, in one transaction per write.

Order of a write, as in Kong: resolve foreign references given by endpoint key (code 13),
fill auto fields, validate (code 2), then inside the transaction check the primary key (3),
foreign keys (4) and uniqueness (5), write the row and its tags, run the entity's hooks.
Entity-specific behaviour (certificate SNIs, CA references, ...) lives in subclasses that
override the hooks; ``dao_for`` picks the subclass registered for an entity.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db import sealing, tables
from gateway.db.store import Store, row_mapping
from gateway.errors import (
    ForeignKeysUnresolved,
    ForeignKeyViolation,
    InvalidOffset,
    NotFound,
    PrimaryKeyViolation,
    SchemaViolation,
    UniqueViolation,
)
from gateway.schema import fields as m
from gateway.schema.compile import EntityCheck, FieldSpec, RecordSchema
from gateway.schema.entity import EntitySchema
from gateway.schema.validate import check_types, is_uuid, validate

Op = Literal["insert", "upsert", "update"]
Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Page:
    data: list[Row]
    offset: str | None


@dataclass(frozen=True, slots=True)
class TagFilter:
    tags: tuple[str, ...]
    any: bool = False  # True for `a/b` (OR), False for `a,b` (AND)


def now_s() -> int:
    return int(time.time())


def now_ms() -> float:
    return round(time.time(), 3)


def encode_offset(last_id: str) -> str:
    """Kong's token: base64 (no padding) of the JSON array of the last primary key."""
    return base64.b64encode(json.dumps([last_id]).encode()).decode().rstrip("=")


def decode_offset(token: str) -> str:
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=False)
    except (binascii.Error, ValueError) as exc:
        raise InvalidOffset(token) from exc
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidOffset(token, "bad json encoding") from exc
    if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], str)
            and is_uuid(value[0])):
        raise InvalidOffset(token)
    return str(value[0]).lower()


_DAO_CLASSES: dict[str, type[Dao]] = {}


def register(entity_name: str) -> Callable[[type[Dao]], type[Dao]]:
    def wrap(cls: type[Dao]) -> type[Dao]:
        _DAO_CLASSES[entity_name] = cls
        return cls

    return wrap


def dao_for(store: Store, entity: EntitySchema) -> Dao:
    from gateway.db import daos  # noqa: F401 - registers the entity-specific DAOs

    return _DAO_CLASSES.get(entity.name, Dao)(store, entity)


class Dao:
    """CRUD for one entity. Reads take a connection; writes open their own transaction."""

    # fields maintained by the DAO, not by the client
    auto_fields: ClassVar[frozenset[str]] = frozenset({"id", "created_at", "updated_at"})

    def __init__(self, store: Store, entity: EntitySchema) -> None:
        self.store = store
        self.entity = entity
        self.table = tables.table(entity.name)
        self.ctx = store.registry.context()
        # every bundled plugin's config schema, enabled or not: its secrets stay secrets
        self.plugin_schemas = {name: spec.config
                               for name, spec in store.registry.available.items()}
        self.has_secrets = sealing.entity_has_secrets(entity, self.plugin_schemas)

    # ------------------------------------------------------------------ secrets
    def seal(self, values: Mapping[str, Any]) -> Row:
        """Secrets sealed under the keyring's current key (as given without a keyring)."""
        if not self.has_secrets:
            return dict(values)
        return sealing.seal_row(self.entity, self.store.keyring, values, self.plugin_schemas)

    def open(self, row: Mapping[str, Any], patch: Mapping[str, Any] | None = None) -> Row:
        """Secrets decrypted; ``SecretUnavailable`` names the row and key id when one
        cannot be. Reads return rows as stored: callers that need the secrets open them."""
        if not self.has_secrets:
            return dict(row)
        return sealing.open_row(self.entity, self.store.keyring, row, self.plugin_schemas,
                                patch)

    def without_secrets(self, row: Mapping[str, Any]) -> Row:
        if not self.has_secrets:
            return dict(row)
        return sealing.drop_secrets(self.entity, row, self.plugin_schemas)

    # ------------------------------------------------------------------ row <-> JSON
    def to_json(self, row: Mapping[str, Any]) -> Row:
        out: Row = {}
        for spec in self.entity.stored_fields:
            if spec.kind == "foreign":
                ref = row[f"{spec.name}_id"]
                out[spec.name] = {"id": str(ref)} if ref is not None else None
            else:
                out[spec.name] = row[spec.name]
        return out

    def to_row(self, values: Mapping[str, Any]) -> Row:
        row: Row = {}
        for spec in self.entity.stored_fields:
            value = values.get(spec.name)
            if spec.kind == "foreign":
                row[f"{spec.name}_id"] = value["id"] if value else None
            else:
                row[spec.name] = value
        if self.entity.cache_key:
            row["cache_key"] = self.cache_key(values)
        return row

    def cache_key(self, values: Mapping[str, Any]) -> str:
        parts = [self.entity.name]
        for name in self.entity.cache_key:
            value = values.get(name)
            if isinstance(value, dict):
                value = value.get("id")
            parts.append("" if value is None else str(value))
        return ":".join(parts) + ":"

    def cache_key_fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {name: values.get(name) for name in self.entity.cache_key}

    # ------------------------------------------------------------------ reads
    async def get(self, conn: AsyncConnection, ident: str) -> Row | None:
        if not is_uuid(ident):
            return None
        row = (await conn.execute(sa.select(self.table).where(self.table.c.id == ident.lower()))
               ).first()
        if row is None:
            return None
        return (await self.with_extras(conn, [self.to_json(row_mapping(row))]))[0]

    async def get_by_key(self, conn: AsyncConnection, key: str) -> Row | None:
        """Kong's rule: a key that parses as a UUID is an id, otherwise the endpoint key."""
        if is_uuid(key):
            return await self.get(conn, key)
        if self.entity.endpoint_key is None:
            return None
        return await self.find_one(conn, {self.entity.endpoint_key: key})

    async def find_one(self, conn: AsyncConnection, where: Mapping[str, Any]) -> Row | None:
        rows = await self.find(conn, where, limit=1)
        return rows[0] if rows else None

    async def find(self, conn: AsyncConnection, where: Mapping[str, Any],
                   limit: int | None = None) -> list[Row]:
        if not matchable(where):
            return []
        query = sa.select(self.table).where(*self._conditions(where)).order_by(self.table.c.id)
        if limit is not None:
            query = query.limit(limit)
        rows = [self.to_json(row_mapping(r)) for r in (await conn.execute(query)).all()]
        return await self.with_extras(conn, rows)

    def _conditions(self, where: Mapping[str, Any]) -> list[sa.ColumnElement[bool]]:
        conds: list[sa.ColumnElement[bool]] = []
        for name, value in where.items():
            if name == "cache_key":
                conds.append(self.table.c.cache_key == value)
                continue
            spec = self.entity.field(name)
            column = self.table.c[tables.column_name(spec)]
            if isinstance(value, dict):
                value = value.get("id")
            conds.append(column.is_(None) if value is None else column == value)
        return conds

    async def page(self, conn: AsyncConnection, *, size: int, offset: str | None = None,
                   tags: TagFilter | None = None, where: Mapping[str, Any] | None = None
                   ) -> Page:
        query = sa.select(self.table).order_by(self.table.c.id).limit(size + 1)
        if where:
            query = query.where(*self._conditions(where))
        if offset is not None:
            query = query.where(self.table.c.id > decode_offset(offset))
        if tags is not None and tags.tags:
            query = query.where(self.table.c.id.in_(self._tagged(tags)))
        rows = [self.to_json(row_mapping(r)) for r in (await conn.execute(query)).all()]
        next_offset = encode_offset(rows[size - 1]["id"]) if len(rows) > size else None
        return Page(await self.with_extras(conn, rows[:size]), next_offset)

    def _tagged(self, tags: TagFilter) -> sa.Select[Any]:
        t = tables.tags
        query = sa.select(t.c.entity_id).where(t.c.entity_name == self.entity.name,
                                               t.c.tag.in_(tags.tags))
        if not tags.any:
            query = query.group_by(t.c.entity_id).having(
                sa.func.count(sa.distinct(t.c.tag)) == len(set(tags.tags)))
        return query

    async def with_extras(self, conn: AsyncConnection, rows: list[Row]) -> list[Row]:
        """Hook: add derived, non-stored fields to rows read back (certificate ``snis``)."""
        return rows

    # ------------------------------------------------------------------ writes
    async def insert(self, data: Mapping[str, Any]) -> Row:
        return await self._write("insert", None, dict(data))

    async def upsert(self, ident: str, data: Mapping[str, Any]) -> Row:
        return await self._write("upsert", ident.lower(), dict(data))

    async def upsert_resolved(self, resolve: Callable[[AsyncConnection],
                                                      Awaitable[tuple[str, Row]]]) -> Row:
        """An upsert whose id is found inside the write transaction (PUT by name: two
        concurrent PUTs of one new name must not both decide to insert)."""
        return await self._write("upsert", None, {}, resolve)

    async def update(self, ident: str, patch: Mapping[str, Any]) -> Row:
        return await self._write("update", ident.lower(), dict(patch))

    async def insert_in(self, conn: AsyncConnection, data: Mapping[str, Any]) -> Row:
        """Insert inside a transaction the caller already holds (dependent rows)."""
        return await self._write_in(conn, "insert", None, self.prepare(dict(data), "insert"))

    async def _write(self, op: Op, ident: str | None, data: Row,
                     resolve: Callable[[AsyncConnection], Awaitable[tuple[str, Row]]]
                     | None = None) -> Row:
        """``resolve``, when given, supplies the id and data from inside the transaction;
        otherwise the data is prepared (PEM parsing and all) before the lock is taken."""
        prepared = self.prepare(data, op) if resolve is None else {}

        async def target(conn: AsyncConnection) -> tuple[str | None, Row]:
            if resolve is None:
                return ident, prepared
            found, body = await resolve(conn)
            return found.lower(), self.prepare(dict(body), op)

        try:
            async with self.store.write() as conn:
                row = await self._write_in(conn, op, *await target(conn))
        except IntegrityError:
            # A constraint fired that the checks did not see (a writer that bypassed the
            # version lock); answer with the typed error the checks now find, if any.
            async with self.store.read() as conn:
                await self._write_in(conn, op, *await target(conn), dry_run=True)
            raise
        return row

    async def _write_in(self, conn: AsyncConnection, op: Op, ident: str | None, data: Row,
                        dry_run: bool = False) -> Row:
        old: Row | None = None
        if op == "update":
            assert ident is not None
            old = await self.get(conn, ident)
            if old is None:
                raise NotFound({"id": ident})
            old = self.open(old, patch=data)  # the merge and the checks need plaintext
        elif op == "upsert":
            assert ident is not None
            old = await self.get(conn, ident)
        data = await self.resolve_foreign(conn, data)
        values = self.values_for(op, ident, data, old)
        await self.check(conn, op, values, old, data)
        if dry_run:
            return values
        await self.save(conn, op, values, old)
        await self.after_write(conn, op, values, old, data)
        return await self.read_back(conn, values["id"])

    async def read_back(self, conn: AsyncConnection, ident: str) -> Row:
        row = await self.get(conn, ident)
        assert row is not None
        return row

    def prepare(self, data: Row, op: Op) -> Row:
        """Hook: Kong's shorthand fields (services ``url``) become real fields here."""
        for name, rewrite in self.entity.rewrites.items():
            if name in data:
                data = rewrite(data)
        return data

    def values_for(self, op: Op, ident: str | None, data: Row, old: Row | None) -> Row:
        """Auto fields, merge (PATCH) and validation: the normalised row to write."""
        transient = self.transient_input(data)
        stored = {k: v for k, v in data.items() if k not in transient}
        if op == "update":
            assert old is not None
            check_types(self.entity.record, stored, ctx=self.ctx)
            plugin = self.ctx.plugin_schemas.get(str(old.get("name")))
            target = {**merge(self.entity.record.by_name, old, stored, plugin), "id": old["id"]}
        else:
            target = dict(stored)
            if op == "upsert":
                target["id"] = ident
            target.setdefault("id", str(uuid.uuid4()))
            if isinstance(target["id"], str):
                target["id"] = target["id"].lower()
        self._stamp(op, target)
        values = validate(self.entity.record, {**target, **transient}, ctx=self.ctx,
                          checks=self.extra_checks(target))
        return self.transform(values)

    def _stamp(self, op: Op, target: Row) -> None:
        """Kong's auto timestamps: ``updated_at`` on every write, ``created_at`` on insert and
        upsert unless the client gave one (so PUT resets it, as in Kong)."""
        for spec in self.entity.timestamp_fields():
            marker = spec.marker(m.Timestamp)
            assert marker is not None
            if marker.update or (op != "update" and target.get(spec.name) is None):
                target[spec.name] = now_ms() if marker.ms else now_s()

    def extra_checks(self, values: Row) -> tuple[EntityCheck, ...]:
        """Hook: checks that depend on the row itself (a plugin's own entity checks)."""
        return ()

    def transient_input(self, data: Row) -> Row:
        return {k: v for k, v in data.items()
                if k in self.entity.record.by_name and not self.entity.field(k).stored}

    def transform(self, values: Row) -> Row:
        """Hook: computed fields (``cert_digest``), after validation."""
        return values

    async def resolve_foreign(self, conn: AsyncConnection, data: Row) -> Row:
        """``{"name": "x"}`` references become ``{"id": ...}`` (Kong's code 13 if unknown)."""
        for spec in self.entity.foreign_fields:
            ref = data.get(spec.name)
            if not isinstance(ref, dict) or "id" in ref or len(ref) != 1:
                continue
            parent = self.store.entity(spec.foreign.entity) if spec.foreign else None
            if parent is None or parent.endpoint_key is None:
                continue
            (key, value), = ref.items()
            if key != parent.endpoint_key or not isinstance(value, str):
                continue
            found = await self.store.dao(parent.name).find_one(conn, {key: value})
            if found is None:
                raise ForeignKeysUnresolved(spec.name, parent.name, {key: value})
            data = {**data, spec.name: {"id": found["id"]}}
        return data

    async def check(self, conn: AsyncConnection, op: Op, values: Row, old: Row | None,
                    data: Row) -> None:
        """Primary key, foreign keys and uniqueness, inside the write transaction."""
        ident = values["id"]
        if op == "insert" and await self._exists(conn, ident):
            raise PrimaryKeyViolation({"id": ident})
        for spec in self.entity.foreign_fields:
            await self._check_parent(conn, spec, values.get(spec.name))
        for name in self.entity.unique_fields:
            value = values.get(name)
            if value is not None and await self._taken(conn, {name: value}, ident):
                raise UniqueViolation({name: value})
        if self.entity.cache_key and await self._taken(
                conn, {"cache_key": self.cache_key(values)}, ident):
            raise UniqueViolation(self.cache_key_fields(values))

    async def _exists(self, conn: AsyncConnection, ident: str) -> bool:
        query = sa.select(self.table.c.id).where(self.table.c.id == ident)
        return (await conn.execute(query)).first() is not None

    async def _taken(self, conn: AsyncConnection, where: Mapping[str, Any], ident: str) -> bool:
        query = sa.select(self.table.c.id).where(*self._conditions(where),
                                                 self.table.c.id != ident).limit(1)
        return (await conn.execute(query)).first() is not None

    async def _check_parent(self, conn: AsyncConnection, spec: FieldSpec, ref: Any) -> None:
        if not ref or spec.foreign is None:
            return
        parent = self.store.dao(spec.foreign.entity)
        if not await parent._exists(conn, ref["id"]):
            raise ForeignKeyViolation.missing_parent(spec.name, spec.foreign.entity,
                                                     {"id": ref["id"]})

    async def save(self, conn: AsyncConnection, op: Op, values: Row, old: Row | None) -> None:
        row = self.to_row(self.seal(values))
        if old is None:
            await conn.execute(sa.insert(self.table).values(**row))
        else:
            await conn.execute(sa.update(self.table).where(self.table.c.id == values["id"])
                               .values(**row))
        if self.entity.has_tags:
            await self._save_tags(conn, values["id"], values.get("tags") or ())

    async def _save_tags(self, conn: AsyncConnection, ident: str, tags: Sequence[str]) -> None:
        t = tables.tags
        await conn.execute(sa.delete(t).where(t.c.entity_id == ident))
        if tags:
            await conn.execute(sa.insert(t), [
                {"entity_id": ident, "tag": tag, "entity_name": self.entity.name}
                for tag in tags])

    async def after_write(self, conn: AsyncConnection, op: Op, values: Row, old: Row | None,
                          data: Row) -> None:
        """Hook: writes of dependent rows (certificate SNIs) in the same transaction."""

    # ------------------------------------------------------------------ delete
    async def delete(self, ident: str) -> None:
        """Kong answers 204 whether or not the entity existed."""
        async with self.store.write() as conn:
            row = await self.get(conn, ident)
            if row is None:
                return
            await self.delete_in(conn, row)

    async def delete_in(self, conn: AsyncConnection, row: Row) -> None:
        await self.before_delete(conn, row)
        await self._restrict(conn, row["id"])
        await self._cascade(conn, row["id"])
        await conn.execute(sa.delete(self.table).where(self.table.c.id == row["id"]))
        await conn.execute(sa.delete(tables.tags).where(tables.tags.c.entity_id == row["id"]))

    async def before_delete(self, conn: AsyncConnection, row: Row) -> None:
        """Hook: references the schema cannot express (CA ids inside JSON arrays)."""

    def _children(self, on_delete: str) -> list[tuple[EntitySchema, FieldSpec]]:
        out = []
        for entity in self.store.registry.entities.values():
            for spec in entity.foreign_fields:
                fk = spec.foreign
                if fk and fk.entity == self.entity.name and fk.on_delete == on_delete:
                    out.append((entity, spec))
        return out

    async def _restrict(self, conn: AsyncConnection, ident: str) -> None:
        for child, spec in self._children("restrict"):
            t = tables.table(child.name)
            column = t.c[tables.column_name(spec)]
            if (await conn.execute(sa.select(t.c.id).where(column == ident).limit(1))).first():
                raise ForeignKeyViolation.referenced_by(self.entity.name, child.name)

    async def _cascade(self, conn: AsyncConnection, ident: str) -> None:
        for child, spec in self._children("cascade"):
            dao = self.store.dao(child.name)
            for row in await dao.find(conn, {spec.name: {"id": ident}}):
                await dao.delete_in(conn, row)


def matchable(where: Mapping[str, Any]) -> bool:
    """False when a looked-up value cannot be stored, so that no row can match: text with NUL
    (validation refuses it; PostgreSQL's text cannot hold it and fails the whole query). URL
    keys reach lookups unvalidated (``/upstreams/u/targets/a%00``), hence the check here,
    where every lookup passes."""
    for value in where.values():
        if isinstance(value, dict):
            value = value.get("id")
        if isinstance(value, str) and "\x00" in value:
            return False
    return True


def merge(specs: Mapping[str, FieldSpec], old: Mapping[str, Any], patch: Mapping[str, Any],
          plugin: RecordSchema | None = None) -> Row:
    """Kong's PATCH: records (incl. plugin ``config``, whose schema is ``plugin``) merge field
    by field; everything else, arrays and maps included, is replaced; ``null`` clears."""
    out = dict(old)
    for key, value in patch.items():
        spec = specs.get(key)
        current = out.get(key)
        record = None
        if spec is not None:
            record = plugin if spec.has(m.PluginConfig) else spec.record
        if record is not None and isinstance(value, dict) and isinstance(current, dict):
            out[key] = merge(record.by_name, current, value)
        else:
            out[key] = value
    return out


def schema_violation(field: str, message: str) -> SchemaViolation:
    return SchemaViolation({field: message})


def encode_tag_offset(entity_id: str, tag: str) -> str:
    return base64.b64encode(json.dumps([entity_id, tag]).encode()).decode().rstrip("=")


async def tag_page(conn: AsyncConnection, *, size: int, offset: str | None = None,
                   tag: str | None = None) -> Page:
    """``GET /tags[/{tag}]``: one row per (entity, tag), ordered by entity id then tag."""
    t = tables.tags
    query = sa.select(t.c.entity_name, t.c.entity_id, t.c.tag).order_by(
        t.c.entity_id, t.c.tag).limit(size + 1)
    if tag is not None:
        query = query.where(t.c.tag == tag)
    if offset is not None:
        try:
            raw = base64.b64decode(offset + "=" * (-len(offset) % 4))
            last_id, last_tag = json.loads(raw)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise InvalidOffset(offset) from exc
        if not (isinstance(last_id, str) and is_uuid(last_id) and isinstance(last_tag, str)):
            raise InvalidOffset(offset)  # decodes, but no page of ours ends there
        last_id = last_id.lower()
        query = query.where(sa.or_(t.c.entity_id > last_id,
                                   sa.and_(t.c.entity_id == last_id, t.c.tag > last_tag)))
    rows = [{"entity_name": r[0], "entity_id": str(r[1]), "tag": r[2]}
            for r in (await conn.execute(query)).all()]
    next_offset = None
    if len(rows) > size:
        last = rows[size - 1]
        next_offset = encode_tag_offset(last["entity_id"], last["tag"])
    return Page(rows[:size], next_offset)
