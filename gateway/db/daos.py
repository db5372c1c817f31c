"""Entity-specific DAO behaviour (Kong's custom DAOs), as hooks on the generic ``Dao``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db import tables
from gateway.db.dao import Dao, Op, Row, register
from gateway.errors import ReferencedByOthers, SchemaViolation
from gateway.schema.checks import Custom, Issues
from gateway.schema.compile import EntityCheck
from gateway.schema.entities.upstreams import normalize_target
from gateway.schema.validate import is_uuid
from gateway.tls import pem


def split_names(names: list[Any]) -> list[Any]:
    """``snis=a.test,b.test``: commas are never valid in a host name, so split on them."""
    out: list[Any] = []
    for name in names:
        if isinstance(name, str):
            out.extend(part.strip() for part in name.split(",") if part.strip())
        else:
            out.append(name)
    return out


@register("certificates")
class CertificatesDao(Dao):
    """Certificates own their SNIs: the ``snis`` shorthand is written in the same
    transaction and read back as a sorted list of names."""

    def values_for(self, op: Op, ident: str | None, data: Row, old: Row | None) -> Row:
        names = data.get("snis")
        if isinstance(names, str):
            names = [names]
        if isinstance(names, list):
            names = split_names(names)
            data = {**data, "snis": names}
            seen: set[str] = set()
            for name in names:
                if isinstance(name, str) and name in seen:
                    raise SchemaViolation({"snis": f"{name} is duplicated"})
                seen.add(name)
        return super().values_for(op, ident, data, old)

    async def check(self, conn: AsyncConnection, op: Op, values: Row, old: Row | None,
                    data: Row) -> None:
        await super().check(conn, op, values, old, data)
        snis = tables.table("snis")
        for name in values.get("snis") or ():
            owner = (await conn.execute(sa.select(snis.c.certificate_id)
                                        .where(snis.c.name == name))).scalar_one_or_none()
            if owner is not None and str(owner) != values["id"]:
                raise SchemaViolation({"snis": f"{name} already associated with existing "
                                               f"certificate '{owner}'"})

    async def after_write(self, conn: AsyncConnection, op: Op, values: Row, old: Row | None,
                          data: Row) -> None:
        # PATCH without `snis` keeps them; PUT without `snis` removes them (Kong)
        if op == "update" and "snis" not in data:
            return
        wanted = list(values.get("snis") or ())
        current = await self._names(conn, [values["id"]])
        have = current.get(values["id"], [])
        snis_dao = self.store.dao("snis")
        snis = tables.table("snis")
        stale = [n for n in have if n not in wanted]
        if stale:
            await conn.execute(sa.delete(tables.tags).where(tables.tags.c.entity_id.in_(
                sa.select(snis.c.id).where(snis.c.name.in_(stale)))))
            await conn.execute(sa.delete(snis).where(snis.c.name.in_(stale)))
        for name in wanted:
            if name not in have:
                await snis_dao.insert_in(conn, {"name": name,
                                                "certificate": {"id": values["id"]}})

    async def _names(self, conn: AsyncConnection, ids: list[str]) -> dict[str, list[str]]:
        snis = tables.table("snis")
        rows = await conn.execute(sa.select(snis.c.certificate_id, snis.c.name)
                                  .where(snis.c.certificate_id.in_(ids)))
        out: dict[str, list[str]] = {}
        for cert_id, name in rows.all():
            out.setdefault(str(cert_id), []).append(name)
        return out

    async def with_extras(self, conn: AsyncConnection, rows: list[Row]) -> list[Row]:
        if not rows:
            return rows
        names = await self._names(conn, [r["id"] for r in rows])
        return [{**r, "snis": sorted(names.get(r["id"], []))} for r in rows]


@register("ca_certificates")
class CACertificatesDao(Dao):
    def transform(self, values: Row) -> Row:
        try:
            digest = pem.sha256_digest(pem.load_certificates(values["cert"])[0])
        except pem.PemError as exc:
            raise SchemaViolation({"@entity": [
                "transformation failed: cannot create digest value of certificate"]}) from exc
        return {**values, "cert_digest": digest}

    async def before_delete(self, conn: AsyncConnection, row: Row) -> None:
        ident = row["id"]
        services = tables.table("services")
        query = sa.select(services.c.id, services.c.ca_certificates).where(
            services.c.ca_certificates.is_not(None))
        for sid, cas in (await conn.execute(query)).all():
            if ident in (cas or ()):
                raise ReferencedByOthers(
                    f"ca certificate {ident} is still referenced by services (id = {sid})")
        plugins = tables.table("plugins")
        for pid, config in (await conn.execute(sa.select(plugins.c.id, plugins.c.config))).all():
            if isinstance(config, Mapping) and ident in (config.get("ca_certificates") or ()):
                raise ReferencedByOthers(
                    f"ca certificate {ident} is still referenced by plugins (id = {pid})")


def _must_be_null(field: str) -> EntityCheck:
    def check(values: Mapping[str, Any]) -> Issues:
        return [] if values.get(field) is None else [(field, "value must be null")]

    return Custom((field,), check)


@register("plugins")
class PluginsDao(Dao):
    """The plugin ``name`` selects the config schema, default protocols and scope limits."""

    def values_for(self, op: Op, ident: str | None, data: Row, old: Row | None) -> Row:
        # PUT replaces the whole row: only a PATCH keeps the stored plugin's name
        name = data.get("name", old.get("name") if old and op == "update" else None)
        if name is None:
            raise SchemaViolation({"name": "required field missing"})
        if not isinstance(name, str):
            raise SchemaViolation({"name": "expected a string"})
        spec = self.store.registry.enabled.get(name)
        if spec is None:
            raise SchemaViolation({"name": f"plugin '{name}' not enabled; add it to the "
                                           "'plugins' configuration property"})
        if op != "update" and "protocols" not in data:
            data = {**data, "protocols": list(spec.protocols)}
        return super().values_for(op, ident, data, old)

    def extra_checks(self, values: Row) -> tuple[EntityCheck, ...]:
        spec = self.store.registry.enabled[values["name"]]
        checks: list[EntityCheck] = []
        for flag, field in ((spec.no_consumer, "consumer"), (spec.no_route, "route"),
                            (spec.no_service, "service")):
            if flag:
                checks.append(_must_be_null(field))
        allowed = spec.allowed_protocols

        def protocols(values: Mapping[str, Any]) -> Issues:
            bad = [p for p in values.get("protocols") or () if p not in allowed]
            if bad:
                return [("protocols", "expected one of: " + ", ".join(allowed))]
            return []

        checks.append(Custom(("protocols",), protocols))
        return (*checks, *spec.checks)

    async def check(self, conn: AsyncConnection, op: Op, values: Row, old: Row | None,
                    data: Row) -> None:
        await super().check(conn, op, values, old, data)
        mine = set(values.get("protocols") or ())
        if values.get("route"):
            route = await self.store.dao("routes").get(conn, values["route"]["id"])
            if route is not None and not mine & set(route["protocols"] or ()):
                raise SchemaViolation({"protocols": "must match the associated route's "
                                                    "protocols"})
        elif values.get("service"):
            routes = tables.table("routes")
            rows = (await conn.execute(sa.select(routes.c.protocols).where(
                routes.c.service_id == values["service"]["id"]))).all()
            if rows and not any(mine & set(r[0] or ()) for r in rows):
                raise SchemaViolation({"protocols": "must match the protocols of at least one "
                                                    "route pointing to this Plugin's service"})


@register("targets")
class TargetsDao(Dao):
    def cache_key_fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {"target": values.get("target")}

    async def for_upstream(self, conn: AsyncConnection, upstream_id: str, key: str
                           ) -> Row | None:
        """``/upstreams/{u}/targets/{id or host:port}``."""
        if is_uuid(key):
            row = await self.get(conn, key)
        else:
            target = normalize_target({"target": key})["target"]
            row = await self.find_one(conn, {"upstream": {"id": upstream_id}, "target": target})
        if row is None or (row["upstream"] or {}).get("id") != upstream_id:
            return None
        return row

