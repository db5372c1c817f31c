"""Kong's generated endpoints for one entity, with Kong's status codes and bodies.

``EntityApi`` implements the collection, entity, parent-through-foreign-key and nested child
endpoints. Subclasses change only how a URL key is resolved: certificates by SNI name,
ACLs by group under their consumer, targets by ``host:port`` under their upstream.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from admin import audit
from admin import body as bodies
from admin.http import json_response, no_content
from gateway.db.dao import Dao, Row, TagFilter
from gateway.db.daos import TargetsDao, split_names
from gateway.db.store import Store
from gateway.errors import (
    BadRequest,
    EndpointNotFound,
    InvalidOptions,
    InvalidPrimaryKey,
    InvalidSize,
    InvalidUnique,
    MethodNotAllowed,
    NotFound,
)
from gateway.schema.compile import FieldSpec
from gateway.schema.entity import EntitySchema
from gateway.schema.redact import masked
from gateway.schema.typedefs import tag as tag_error
from gateway.schema.validate import field_error, is_uuid


def page_size(request: Request) -> int:
    raw = request.query_params.get("size")
    if raw is None:
        return 100
    try:
        size = float(raw)
    except ValueError as exc:
        raise InvalidSize("size must be a number") from exc
    if not size.is_integer() or not 1 <= size <= 1000:
        raise InvalidSize("size must be an integer between 1 and 1000")
    return int(size)


def tag_filter(request: Request) -> TagFilter | None:
    raw = request.query_params.get("tags")
    if raw is None:
        return None
    if raw == "":
        raise InvalidOptions({"tags": "cannot be null"})  # Kong's words for `?tags=`
    if "," in raw and "/" in raw:
        raise InvalidOptions({"tags": "invalid filter syntax"})
    any_of = "/" in raw
    tags = tuple(raw.split("/" if any_of else ","))
    if len(tags) > 5:
        raise InvalidOptions({"tags": "cannot query more than 5 tags"})
    if any(not t or tag_error(t) for t in tags):
        raise InvalidOptions({"tags": "invalid filter syntax"})
    return TagFilter(tags=tags, any=any_of)


class EntityApi:
    """The endpoints of one entity. A URL key is a UUID or the entity's endpoint key."""

    def __init__(self, store: Store, entity: EntitySchema, return_keys: bool = True) -> None:
        self.store = store
        self.entity = entity
        self.dao: Dao = store.dao(entity.name)
        self.return_keys = return_keys  # admin_return_keys: false makes secrets write-only

    def shown(self, row: Row) -> Row:
        """A row as the Admin API answers it: secrets decrypted (Kong returns the PEM), or
        left out with ``admin_return_keys: false``. Every answer with a row passes here."""
        return self.dao.open(row) if self.return_keys else self.dao.without_secrets(row)

    # ---------------------------------------------------------------- keys
    def check_key(self, key: str) -> None:
        """Kong answers 400 for a key that is neither a UUID nor a valid endpoint key."""
        if is_uuid(key):
            return
        field = self.entity.endpoint_key
        if field is None:
            raise InvalidPrimaryKey({"id": "expected a valid UUID"})
        err = field_error(self.entity.field(field), key, self.dao.ctx)
        if isinstance(err, str):
            raise InvalidUnique(field, err)

    async def find(self, conn: AsyncConnection, key: str, parent: Row | None = None
                   ) -> Row | None:
        self.check_key(key)
        return await self.dao.get_by_key(conn, key)

    async def require(self, key: str, parent: Row | None = None) -> Row:
        async with self.store.read() as conn:
            row = await self.find(conn, key, parent)
        if row is None:
            raise EndpointNotFound()
        return row

    def not_found(self, key: str) -> NotFound:
        if is_uuid(key) or self.entity.endpoint_key is None:
            return NotFound({"id": key})
        return NotFound({self.entity.endpoint_key: key}, by_primary_key=False)

    async def put_target(self, conn: AsyncConnection, key: str, data: Row,
                         parent: Row | None = None) -> tuple[str, Row]:
        """The id a PUT writes, and the body with the URL key forced into it."""
        if is_uuid(key):
            return key.lower(), data
        self.check_key(key)
        field = self.entity.endpoint_key
        assert field is not None
        existing = await self.dao.get_by_key(conn, key)
        return (existing["id"] if existing else str(uuid.uuid4())), {**data, field: key}

    # ---------------------------------------------------------------- bodies
    async def body(self, request: Request, old: Row | None = None) -> dict[str, Any]:
        decoded = await bodies.read(request)
        plugins = self.store.registry.context().plugin_schemas
        data = decoded.data
        if decoded.form:
            data = bodies.infer_record(self.entity.record, data, plugins,
                                       plugin_name=(old or {}).get("name"))
        if audit.note_of(request) is not None:  # the changed fields, masked once, here
            audit.noted(request, fields=masked(self.entity.record, data, plugins,
                                               plugin=(old or {}).get("name")))
        return data

    def written(self, request: Request, row: Row) -> Row:
        """``row`` was written by this request: its id goes in the audit log."""
        audit.noted(request, entity_id=row["id"])
        return self.shown(row)

    # ---------------------------------------------------------------- collection
    async def list(self, request: Request, where: Mapping[str, Any] | None = None,
                   base: str | None = None) -> Response:
        size = page_size(request)
        offset = request.query_params.get("offset")
        tags = None if base else tag_filter(request)  # Kong ignores tags on nested lists
        async with self.store.read() as conn:
            page = await self.dao.page(conn, size=size, offset=offset, tags=tags, where=where)
        out: dict[str, Any] = {"data": [self.shown(r) for r in page.data], "next": None}
        if page.offset is not None:
            out["offset"] = page.offset
            out["next"] = self.next_url(request, page.offset, base)
        return json_response(200, out)

    def next_url(self, request: Request, offset: str, base: str | None) -> str:
        url = f"{base or '/' + self.entity.url_name}?offset={quote(offset, safe='')}"
        if base is None:
            if "tags" in request.query_params:
                url += "&tags=" + quote(request.query_params["tags"], safe="")
            if "size" in request.query_params:
                url += "&size=" + request.query_params["size"]
        return url

    async def create(self, request: Request, forced: Mapping[str, Any] | None = None
                     ) -> Response:
        data = {**await self.body(request), **(forced or {})}
        return json_response(201, self.written(request, await self.dao.insert(data)))

    # ---------------------------------------------------------------- entity
    async def get(self, request: Request, key: str, parent: Row | None = None) -> Response:
        return json_response(200, self.shown(await self.require(key, parent)))

    async def put(self, request: Request, key: str, forced: Mapping[str, Any] | None = None,
                  parent: Row | None = None) -> Response:
        data = {**await self.body(request), **(forced or {})}

        async def resolve(conn: AsyncConnection) -> tuple[str, Row]:
            ident, target = await self.put_target(conn, key, data, parent)
            return ident, {k: v for k, v in target.items() if k != "id"}

        row = await self.dao.upsert_resolved(resolve)
        return json_response(200, self.written(request, row))

    async def patch(self, request: Request, key: str) -> Response:
        async with self.store.read() as conn:
            row = await self.find(conn, key)
        if row is None:
            raise self.not_found(key)
        return await self.patch_row(request, row)

    async def patch_row(self, request: Request, row: Row,
                        defaults: Mapping[str, Any] | None = None) -> Response:
        data = {**(defaults or {}), **await self.body(request, old=row)}
        written = await self.dao.update(row["id"], data)
        return json_response(200, self.written(request, written))

    async def delete(self, request: Request, key: str) -> Response:
        async with self.store.read() as conn:
            row = await self.find(conn, key)
        if row is not None:
            await self.dao.delete(self.written(request, row)["id"])
        return no_content()

    # ---------------------------------------------------------------- /E/{key}/{fk}
    async def parent(self, request: Request, key: str, field: FieldSpec,
                     parent_api: EntityApi) -> Response:
        row = await self.require(key)
        ref = row.get(field.name)
        if request.method == "PUT":
            if ref is None:
                # the link is checked before the parent is created: a row that may not have
                # this parent (a plugin with no_consumer) must not leave an orphan behind
                link = {field.name: {"id": str(uuid.uuid4())}}
                self.dao.values_for("update", row["id"], dict(link), row)
                created = await parent_api.dao.upsert(link[field.name]["id"],
                                                      await parent_api.body(request))
                await self.dao.update(row["id"], link)
                return json_response(200, parent_api.written(request, created))
            return await parent_api.put(request, ref["id"])
        if ref is None:
            raise EndpointNotFound()
        if request.method == "DELETE":
            raise MethodNotAllowed()
        if request.method == "PATCH":
            return await parent_api.patch(request, ref["id"])
        return await parent_api.get(request, ref["id"])

    # ---------------------------------------------------------------- /P/{p}/E/{key}
    async def owned(self, key: str, field: str, parent: Row) -> Row:
        """The child addressed under ``parent``, or 404 (also when it has another parent)."""
        row = await self.require(key, parent)
        if (row.get(field) or {}).get("id") != parent["id"]:
            raise EndpointNotFound()
        return row


class CertificatesApi(EntityApi):
    """``/certificates/{id or SNI name}``: a name resolves to the certificate that owns it."""

    def check_key(self, key: str) -> None:
        """A non-UUID key is an SNI name: Kong validates it as one (400, code 10)."""
        if is_uuid(key):
            return
        snis = self.store.dao("snis")
        err = field_error(snis.entity.field("name"), key, snis.ctx)
        if isinstance(err, str):
            raise InvalidUnique("name", err)

    async def find(self, conn: AsyncConnection, key: str, parent: Row | None = None
                   ) -> Row | None:
        if is_uuid(key):
            return await self.dao.get(conn, key)
        self.check_key(key)
        sni = await self.store.dao("snis").find_one(conn, {"name": key})
        if sni is None:
            raise EndpointNotFound("SNI not found")
        return await self.dao.get(conn, sni["certificate"]["id"])

    async def put_target(self, conn: AsyncConnection, key: str, data: Row,
                         parent: Row | None = None) -> tuple[str, Row]:
        if is_uuid(key):
            return key.lower(), data
        self.check_key(key)
        sni = await self.store.dao("snis").find_one(conn, {"name": key})
        ident = sni["certificate"]["id"] if sni else str(uuid.uuid4())
        given = data.get("snis")
        if isinstance(given, str):  # Kong's shorthand: `snis=a.test,b.test`
            given = [given]
        if given is not None and not isinstance(given, list):
            return ident, data  # not an array: left to the schema, which says so (400)
        names = split_names(given or [])
        if key not in names:
            names.append(key)
        return ident, {**data, "snis": names}


class ScopedKeyApi(EntityApi):
    """Children addressed by a field that is unique only under their parent (ACL groups,
    target addresses); top-level they are addressed by id only."""

    def __init__(self, store: Store, entity: EntitySchema, key_field: str,
                 parent_field: str, return_keys: bool = True) -> None:
        super().__init__(store, entity, return_keys)
        self.key_field = key_field
        self.parent_field = parent_field

    def check_key(self, key: str) -> None:
        if not is_uuid(key):
            raise InvalidPrimaryKey({"id": "expected a valid UUID"})

    def _scoped(self, key: str, parent: Row) -> dict[str, Any]:
        return {self.parent_field: {"id": parent["id"]}, self.key_field: key}

    async def find(self, conn: AsyncConnection, key: str, parent: Row | None = None
                   ) -> Row | None:
        if is_uuid(key):
            return await self.dao.get(conn, key)
        if parent is None:
            self.check_key(key)
        assert parent is not None
        return await self.dao.find_one(conn, self._scoped(key, parent))

    async def put_target(self, conn: AsyncConnection, key: str, data: Row,
                         parent: Row | None = None) -> tuple[str, Row]:
        if is_uuid(key) or parent is None:
            self.check_key(key)
            return key.lower(), data
        existing = await self.dao.find_one(conn, self._scoped(key, parent))
        return (existing["id"] if existing else str(uuid.uuid4())), {**data,
                                                                     self.key_field: key}


class TargetsApi(ScopedKeyApi):
    async def find(self, conn: AsyncConnection, key: str, parent: Row | None = None
                   ) -> Row | None:
        if parent is None:
            return await super().find(conn, key)
        assert isinstance(self.dao, TargetsDao)
        return await self.dao.for_upstream(conn, parent["id"], key)


def child_base(parent_url: str, parent_key: str, child_url: str) -> str:
    return f"/{parent_url}/{quote(parent_key, safe=':@')}/{child_url}"


class ConsumersApi(EntityApi):
    """``GET /consumers?custom_id=x``: the consumer with that custom_id, unpaginated."""

    async def list(self, request: Request, where: Mapping[str, Any] | None = None,
                   base: str | None = None) -> Response:
        custom_id = request.query_params.get("custom_id")
        if custom_id is None or base is not None:
            return await super().list(request, where, base)
        if not custom_id:
            raise BadRequest("custom_id must be an unempty string")
        if "\x00" in custom_id:  # no stored custom_id can hold one (PostgreSQL text)
            return json_response(200, {"data": [], "next": None})
        async with self.store.read() as conn:
            rows = await self.dao.find(conn, {"custom_id": custom_id}, limit=1)
        return json_response(200, {"data": [self.shown(r) for r in rows], "next": None})
