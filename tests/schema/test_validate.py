"""Validation caps (``Limits``) and linear set de-duplication, as tables; plus the structural
guarantee that every string stored in a database index is capped below PostgreSQL's limit."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

import pytest

from gateway import registry
from gateway.errors import SchemaViolation
from gateway.schema import fields as m
from gateway.schema.compile import FieldSpec, compile_record
from gateway.schema.entities.routes import CidrPort
from gateway.schema.typedefs import route_host
from gateway.schema.validate import ENTITY_LIMITS, Context, Limits, validate

SMALL = Context(limits=Limits(string=5, elements=3))


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    text: str | None = None
    pem: Annotated[str | None, m.LenMax(8)] = None
    items: tuple[str, ...] | None = None
    tags: Annotated[tuple[str, ...] | None, m.Set()] = None
    records: Annotated[tuple[CidrPort, ...] | None, m.Set()] = None
    headers: dict[str, tuple[str, ...]] | None = None


SCHEMA = compile_record(Sample)


def errors(data: dict[str, Any], ctx: Context | None = SMALL) -> Any:
    try:
        validate(SCHEMA, data, ctx=ctx)
    except SchemaViolation as exc:
        return exc.fields
    return None


@pytest.mark.parametrize(("data", "fields"), [
    ({"text": "abcde"}, None),
    ({"text": "abcdef"}, {"text": "length must be at most 5"}),
    ({"pem": "abcdefgh"}, None),  # a field's LenMax overrides the context's limit
    ({"pem": "abcdefghi"}, {"pem": "length must be at most 8"}),
    ({"items": ["a", "b", "c"]}, None),
    ({"items": ["a", "b", "c", "d"]}, {"items": "length must be at most 3"}),
    # the cap comes before the elements: no error per element, no work per element
    ({"items": [1, 2, 3, 4]}, {"items": "length must be at most 3"}),
    ({"items": ["abcdef"]}, {"items": ["length must be at most 5"]}),
    ({"headers": {"a": ["x"], "b": ["x"], "c": ["x"], "d": ["x"]}},
     {"headers": "length must be at most 3"}),
    ({"headers": {"abcdef": ["x"]}}, {"headers": "key length must be at most 5"}),
    ({"headers": {"a\x00": ["x"]}}, {"headers": "invalid key: must not contain NUL characters"}),
])
def test_limits(data: dict[str, Any], fields: Any) -> None:
    assert errors(data) == fields


def test_no_limits_for_trusted_input() -> None:
    """The settings file validates without a context: no caps but the fields' own."""
    assert errors({"text": "x" * 10_000, "items": ["a"] * 10_000}, ctx=None) is None


@pytest.mark.parametrize(("given", "kept"), [
    (["b", "a", "b", "c", "a"], ["b", "a", "c"]),
    ([{"ip": "10.0.0.1", "port": 1}, {"port": 1, "ip": "10.0.0.1"}],
     [{"ip": "10.0.0.1", "port": 1}]),
])
def test_sets_keep_first_seen_order(given: list[Any], kept: list[Any]) -> None:
    field = "tags" if isinstance(given[0], str) else "records"
    out = validate(SCHEMA, {field: given}, ctx=Context(limits=ENTITY_LIMITS))
    assert out[field] == kept


def test_set_deduplication_is_linear() -> None:
    """100,000 tags took about 90 s with a list scan per element."""
    tags = [f"t{i}" for i in range(50_000)] * 2
    started = time.monotonic()
    out = validate(SCHEMA, {"tags": tags})
    assert len(out["tags"]) == 50_000
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(("value", "error"), [
    ("*.example.com", None),
    ("example.*", None),
    ("a*b.example.com", "invalid wildcard: must be placed at leftmost or rightmost label"),
    ("*.a.*", "invalid wildcard: must have at most one wildcard"),
    ("a" * 100_000 + "**", "invalid wildcard: must have at most one wildcard"),
])
def test_route_host_wildcards(value: str, error: str | None) -> None:
    assert route_host(value) == error


# --------------------------------------------------------------------------- index rows

# PostgreSQL refuses a btree index row over 2,704 bytes; UTF-8 takes up to 4 per character,
# and a cache_key adds an entity name, ids and colons (under 100 characters)
MAX_INDEXED = (2704 - 100) // 4


def _cap(spec: FieldSpec) -> int | None:
    if spec.has(m.Uuid):
        return 36
    own = spec.marker(m.LenMax)
    return own.n if own else ENTITY_LIMITS.string


def indexed_strings() -> list[tuple[str, str, FieldSpec]]:
    """Every string that reaches an index: unique fields, ``cache_key`` parts, tags."""
    out = []
    for entity in registry.build().entities.values():
        names = set(entity.unique_fields) | set(entity.cache_key)
        for spec in entity.fields:
            if spec.name in names and spec.kind == "string":
                out.append((entity.name, spec.name, spec))
            if spec.name == "tags" and spec.elements is not None:
                out.append((entity.name, "tags", spec.elements))
    return out


@pytest.mark.parametrize(("entity", "field", "spec"), indexed_strings(),
                         ids=lambda x: x if isinstance(x, str) else "")
def test_indexed_strings_fit_an_index_row(entity: str, field: str, spec: FieldSpec) -> None:
    cap = _cap(spec)
    assert cap is not None and cap <= MAX_INDEXED, (entity, field, cap)


def test_entity_validation_uses_the_limits() -> None:
    assert registry.build().context().limits == ENTITY_LIMITS
