"""Which entity goes before which, and which entities nest under which (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.schema.entity import EntitySchema

# Kong's topological order, with the references the schema cannot express as foreign keys
# first: CA certificates are named by id inside services and plugin configs.
PREFERRED = ("ca_certificates", "certificates", "snis", "services", "routes", "upstreams",
             "targets", "consumers", "plugins")


def import_order(schemas: Mapping[str, EntitySchema]) -> tuple[str, ...]:
    """Parents before children (stable: ``PREFERRED`` first, then the registry's order)."""
    pending = [n for n in PREFERRED if n in schemas] + [n for n in schemas if n not in PREFERRED]
    placed: list[str] = []
    while pending:
        for name in pending:
            parents = {f.foreign.entity for f in schemas[name].foreign_fields
                       if f.foreign is not None and f.foreign.entity != name}
            if parents <= set(placed) | (parents - set(schemas)):
                placed.append(name)
                pending.remove(name)
                break
        else:  # a cycle cannot happen with Kong's entities; keep the rest as listed
            placed.extend(pending)
            break
    return tuple(placed)


def child_keys(schemas: Mapping[str, EntitySchema]) -> dict[str, dict[str, str]]:
    """``{parent: {child table: the child's field that references the parent}}``."""
    out: dict[str, dict[str, str]] = {}
    for name, schema in schemas.items():
        for spec in schema.foreign_fields:
            if spec.foreign is not None and spec.foreign.entity in schemas:
                out.setdefault(spec.foreign.entity, {}).setdefault(name, spec.name)
    return out
