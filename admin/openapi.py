"""The Admin API's OpenAPI 3.1 contract, generated from the routes and the entity schemas.

Nothing here is written by hand per endpoint: the paths and methods come from the app's route
table (every ``Resource``), what a path serves from its ``Shape`` (``admin/shapes.py``), and
bodies and rows from the same compiled ``RecordSchema``/``FieldSpec`` tree that drives
validation (``gateway/schema/compile.py``). What JSON Schema cannot say (Kong's typedef checks:
hosts, paths, PEM, ...) stays in the validator and is answered with Kong's 400.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from admin.http import JSON_TYPE, Resource
from admin.shapes import Shape
from gateway import version
from gateway.registry import Registry
from gateway.schema import fields as m
from gateway.schema.compile import MISSING, FieldSpec, RecordSchema
from gateway.schema.entity import EntitySchema

Schema = dict[str, Any]

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
WRITES = ("POST", "PUT", "PATCH")

_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean",
          "array": "array", "set": "array", "map": "object", "record": "object",
          "foreign": "object"}

QUERY: Mapping[str, Schema] = {
    "size": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    "offset": {"type": "string", "minLength": 1},
    "tags": {"type": "string", "description": "a,b (all of) or a/b (any of), at most 5"},
    "custom_id": {"type": "string"},
    "balancer_health": {"type": "string", "enum": ["1", "true"]},
}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


# ---------------------------------------------------------------------------- fields


def field_schema(spec: FieldSpec, *, strict: bool) -> Schema:
    """One field as JSON Schema. ``strict`` adds the input constraints (lengths, ranges);
    without it the schema describes what the Admin API answers."""
    stamp = spec.marker(m.Timestamp)
    if spec.kind == "any" or (strict and stamp is not None and stamp.update):
        return {}  # anything: an `updated_at` sent is replaced by the server's clock
    if spec.has(m.PluginConfig):
        out: Schema = {"type": "object"}
    else:
        out = {"type": _TYPES[spec.kind], **_shape_of(spec, strict)}
    for mk in spec.markers:
        if isinstance(mk, m.OneOf):
            out["enum"] = list(mk.values)
        elif isinstance(mk, m.Between):
            out["minimum"], out["maximum"] = _num(mk.lo), _num(mk.hi)
    if spec.has(m.Uuid):
        out["format"] = "uuid"
    if spec.has(m.Timestamp):
        out["exclusiveMinimum"] = 0
    if spec.nullable:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    default = _default(spec)
    if strict and default is not MISSING:
        out["default"] = default
    return out


def _shape_of(spec: FieldSpec, strict: bool) -> Schema:
    """The kind-specific part: items, properties, lengths."""
    if spec.kind in ("array", "set") and spec.elements is not None:
        out: Schema = {"items": field_schema(spec.elements, strict=strict)}
        len_min = spec.marker(m.LenMin)
        if strict and len_min:
            out["minItems"] = len_min.n
        return out
    if spec.kind == "map" and spec.elements is not None:
        return {"additionalProperties": field_schema(spec.elements, strict=strict)}
    if spec.kind == "record" and spec.record is not None:
        return record_schema(spec.record, strict=strict)
    if spec.kind == "foreign":
        return {"properties": {"id": {"type": "string", "format": "uuid"}},
                "required": ["id"], "additionalProperties": False}
    if spec.kind == "string" and strict:
        len_min, len_max = spec.marker(m.LenMin), spec.marker(m.LenMax)
        out = {"minLength": len_min.n if len_min else (0 if spec.has(m.AllowEmpty) else 1)}
        if len_max:
            out["maxLength"] = len_max.n
        return out
    return {}


def _default(spec: FieldSpec) -> Any:
    if spec.has(m.PluginConfig) or spec.has(m.Auto):
        return MISSING
    value = spec.default_value()
    if value is MISSING or value is None:
        return MISSING
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return MISSING
    return value


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def record_schema(record: RecordSchema, *, strict: bool, required: bool = True,
                  omit: Iterable[str] = ()) -> Schema:
    """A record's fields as an object schema. Input (``strict``) lists what a body may hold
    and requires what Kong requires; output lists every stored field."""
    skip = set(omit)
    specs = [f for f in record.fields if f.name not in skip and (strict or f.stored)]
    out: Schema = {"type": "object",
                   "properties": {f.name: field_schema(f, strict=strict) for f in specs}}
    if strict:
        out["additionalProperties"] = False
        needed = [f.name for f in specs if required and _required_input(f)]
    else:
        needed = [f.name for f in specs if not f.has(m.Secret)]  # keys may be withheld
    if needed:
        out["required"] = needed
    return out


def _required_input(spec: FieldSpec) -> bool:
    return spec.required and not spec.has(m.Auto) and spec.default is MISSING \
        and not (spec.kind == "record" and spec.record is not None)


# ---------------------------------------------------------------------------- entities


def entity_bodies(entity: EntitySchema, plugin_configs: Mapping[str, RecordSchema],
                  variants: Iterable[Variant] = ()) -> dict[str, Schema]:
    """The component schemas of one entity: its row, create/update bodies and form body."""
    name = entity.name
    create = record_schema(entity.record, strict=True)
    update = record_schema(entity.record, strict=True, required=False)
    for shorthand in entity.rewrites:  # Kong's shorthand inputs (services `url`)
        if shorthand not in entity.record.by_name:
            for body in (create, update):
                body["properties"][shorthand] = {"type": "string",
                                                 "description": "shorthand, expanded on write"}
    out = {name: record_schema(entity.record, strict=False),
           f"{name}.create": create, f"{name}.update": update,
           f"{name}.form": form_schema(update)}
    if any(f.has(m.PluginConfig) for f in entity.fields) and plugin_configs:
        out.update(plugin_variants(name, create, plugin_configs))
    for variant in variants:
        out[create_name(name, variant)] = create_variant(out, f"{name}.create", variant)
    return out


Variant = tuple[str | None, str | None, bool]
"""How a create body is adjusted by its URL: (the parent field the URL sets, the key field a
PUT to a non-UUID key sets, whether it is a PUT)."""


def create_name(entity: str, variant: Variant) -> str:
    forced, key, put = variant
    under = f".under.{forced}" if forced else ""
    keyed = f".keyed.{key}" if key else ""
    return f"{entity}.{'put' if put else 'create'}{under}{keyed}"


def create_variant(components: Mapping[str, Schema], name: str, variant: Variant) -> Schema:
    """The create body where the URL sets the parent (not required then) and, on PUT, the id
    and the key: whatever the body says for those is replaced, so anything goes there."""
    base = components[name]
    if "oneOf" in base:  # plugins: one variant per plugin, each adjusted the same way
        return {"oneOf": [create_variant(components, r["$ref"].rsplit("/", 1)[1], variant)
                          for r in base["oneOf"]]}
    forced, key, put = variant
    replaced = [f for f in (key, "id" if put else None) if f]
    out: Schema = {**base, "properties": dict(base["properties"])}
    for field in replaced:
        out["properties"][field] = {}
    required = [r for r in base.get("required", ()) if r not in (forced, *replaced)]
    out.pop("required", None)
    if required:
        out["required"] = required
    return out


def plugin_variants(entity: str, create: Schema, configs: Mapping[str, RecordSchema]
                    ) -> dict[str, Schema]:
    """A plugin body is one of the enabled plugins: its ``name`` selects its ``config``."""
    out: dict[str, Schema] = {}
    mapping: dict[str, str] = {}
    for plugin, config in sorted(configs.items()):
        variant = json.loads(json.dumps(create))
        variant["properties"]["name"] = {"type": "string", "const": plugin}
        variant["properties"]["config"] = record_schema(config, strict=True)
        if "required" in variant["properties"]["config"]:
            variant["required"] = [*variant.get("required", []), "config"]
        key = f"{entity}.create.{plugin}"
        out[key] = variant
        mapping[plugin] = f"#/components/schemas/{key}"
    out[f"{entity}.create"] = {
        "oneOf": [{"$ref": target} for target in mapping.values()],
        "discriminator": {"propertyName": "name", "mapping": mapping}}
    return out


def form_schema(update: Schema) -> Schema:
    """What a form body can carry flat (``a=1``, ``a[]=x``): scalars and arrays of scalars.
    Nested keys (``config.x``, ``service.id``) are accepted too but not enumerated here."""
    flat: Schema = {}
    for name, prop in update["properties"].items():
        kinds = prop.get("type")
        base = kinds[0] if isinstance(kinds, list) else kinds
        if base in ("string", "integer", "number", "boolean"):
            flat[name] = {k: v for k, v in prop.items() if k != "default"}
        elif base == "array" and prop.get("items", {}).get("type") in ("string", "integer"):
            flat[name] = {"type": "array", "items": prop["items"]}
    return {"type": "object", "properties": flat}


# ---------------------------------------------------------------------------- errors


COMMON_COMPONENTS: dict[str, Schema] = {
    "KongError": {
        "type": "object", "required": ["code", "name", "message"],
        "properties": {"code": {"type": "integer"}, "name": {"type": "string"},
                       "message": {"type": "string"}, "fields": {},
                       "options": {"type": "object"}}},
    "Message": {"type": "object", "required": ["message"],
                "properties": {"message": {"type": "string"}}},
}

_EITHER = {"anyOf": [ref("KongError"), ref("Message")]}
ERRORS: Mapping[str, tuple[str, Schema | None]] = {
    "400": ("bad request: Kong's schema violation, invalid size/offset/options, bad body",
            _EITHER),
    "404": ("not found", _EITHER),
    "405": ("method not allowed (Kong's operation unsupported)", _EITHER),
    "409": ("unique constraint violation", ref("KongError")),
    "413": ("payload too large (admin_max_body_size)", ref("Message")),
    "415": ("unsupported Content-Type (empty body, as Kong)", None),
    "503": ("the database cannot be reached", ref("Message")),
}


def _response(description: str, schema: Schema | None) -> Schema:
    out: Schema = {"description": description}
    if schema is not None:
        out["content"] = {JSON: {"schema": schema}}
    return out


def error_responses(method: str, kind: str) -> dict[str, Schema]:
    """References to the shared error responses (``components.responses``)."""
    codes = ["400", "404", "503"]
    if method in WRITES and kind != "action":
        codes += ["409", "413", "415"]
    if kind == "parent":
        codes.append("405")
    return {code: {"$ref": f"#/components/responses/{code}"} for code in sorted(codes)}


# ---------------------------------------------------------------------------- operations


def page_schema(item: Schema) -> Schema:
    return {"type": "object", "required": ["data", "next"],
            "properties": {"data": {"type": "array", "items": item},
                           "next": {"type": ["string", "null"]},
                           "offset": {"type": "string"}}}


def request_body(method: str, shape: Shape) -> Schema | None:
    """The body a write takes, or None (no body)."""
    if method not in WRITES or shape.kind in ("action", "meta"):
        return None
    if shape.entity is None:
        return {"required": False, "content": {JSON: {"schema": {"type": "object"}}}}
    entity = shape.entity
    patch = method == "PATCH" or (method == "PUT" and shape.put_updates)
    body = ref(f"{entity}.update" if patch else f"{entity}.create")
    if method == "PUT" and not patch:
        body = ref(create_name(entity, (shape.forced, shape.key_field, True)))
    elif shape.forced and not patch:
        body = ref(create_name(entity, (shape.forced, None, False)))
    # only a create needs a body: PUT takes its key from the URL, PATCH may change nothing
    return {"required": method == "POST", "content": {
        JSON: {"schema": body},
        FORM: {"schema": ref(f"{entity}.form")},
        MULTIPART: {"schema": ref(f"{entity}.form")},
    }}


def success(method: str, shape: Shape) -> dict[str, Schema]:
    entity = shape.entity
    row = ref(entity) if entity else {"type": "object"}
    if shape.kind == "collection":
        if method == "POST":
            return {"201": _response("created", row)}
        return {"200": _response("a page of rows", page_schema(row))}
    if shape.kind in ("entity", "parent"):
        if method == "DELETE":
            return {"204": _response("deleted (or there was nothing to delete)", None)}
        return {"200": _response("the row", row)}
    if shape.kind == "action":
        return {"204": _response("done", None)}
    if shape.kind == "validate":
        return {"200": _response("the body would be accepted", ref("Message"))}
    body = dict(shape.responses.get(method, {"type": "object"}))
    return {"200": _response("ok", body)}


def operation(path: str, method: str, shape: Shape) -> Schema:
    params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
              for p in re.findall(r"{(\w+)}", path)]
    if method == "GET":
        params += [{"name": q, "in": "query", "required": False, "schema": QUERY[q]}
                   for q in shape.query]
    op: Schema = {"operationId": f"{method.lower()} {path}",
                  "responses": {**success(method, shape), **error_responses(method,
                                                                            shape.kind)}}
    if shape.summary:
        op["summary"] = shape.summary
    if shape.entity:
        op["tags"] = [shape.entity]
    if params:
        op["parameters"] = params
    body = request_body(method, shape)
    if body is not None:
        op["requestBody"] = body
    return op


# ---------------------------------------------------------------------------- document


def resources(routes: Sequence[BaseRoute]) -> list[tuple[str, Resource]]:
    return sorted((r.path, r.app) for r in routes
                  if isinstance(r, Route) and isinstance(r.app, Resource))


def document(routes: Sequence[BaseRoute], registry: Registry) -> Schema:
    """The whole OpenAPI 3.1 document for the Admin API serving ``routes``."""
    configs = {name: spec.config for name, spec in registry.enabled.items()}
    paths: dict[str, Schema] = {}
    entities: dict[str, set[Variant]] = {}
    for path, resource in resources(routes):
        shape = resource.shape
        if shape.entity:
            variants = entities.setdefault(shape.entity, set())
            if shape.forced and "POST" in resource.handlers:
                variants.add((shape.forced, None, False))
            if "PUT" in resource.handlers and not shape.put_updates and \
                    shape.kind in ("entity", "parent"):
                variants.add((shape.forced, shape.key_field, True))
        paths[path] = {method.lower(): operation(path, method, shape)
                       for method in sorted(resource.handlers)}
    schemas = dict(COMMON_COMPONENTS)
    for name, variants in sorted(entities.items()):
        schemas.update(entity_bodies(registry.entities[name], configs,
                                     sorted(variants, key=repr)))
    return {
        "openapi": "3.1.0",
        "info": {"title": "Ramparts Admin API", "version": version.__version__,
                 "description": f"Kong Admin API {version.KONG_COMPAT_VERSION} compatible. "
                                "Every path also answers OPTIONS and, where it has GET, HEAD."},
        "servers": [{"url": "http://localhost:8001"}],
        "paths": paths,
        "components": {"schemas": schemas,
                       "responses": {code: _response(*e) for code, e in ERRORS.items()}},
    }


def route(registry: Registry) -> Route:
    """``GET /openapi.json``, built once from the app's routes on first request."""
    cache: list[bytes] = []

    async def serve(request: Request) -> Response:
        if not cache:
            # indented, so that `curl ... | head` shows where things are
            cache.append(json.dumps(document(request.app.routes, registry), indent=1,
                                    ensure_ascii=False).encode())
        return Response(cache[0], media_type=JSON_TYPE)

    return Route("/openapi.json", Resource(Shape(summary="this document"), get=serve))
