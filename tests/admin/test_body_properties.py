"""Property tests of the body decoders (JSON, urlencoded form, multipart) and of the typing
and validation after them: whatever the bytes, the only failure is one of our typed errors
(which the Admin API renders as a Kong 4xx), and hostile repetitions decode in linear time.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from admin import body as bodies
from gateway import registry
from gateway.errors import BadRequest, RampartsError, SchemaViolation, UnsupportedMediaType
from gateway.schema.validate import validate

REGISTRY = registry.build()
CTX = REGISTRY.context()
ENTITIES = sorted(REGISTRY.entities)
# bounded: the suite stays fast, an example over 5 s (a loaded machine needs ms) fails,
# nothing is written to disk
PROPS = settings(max_examples=200, deadline=timedelta(seconds=5), database=None,
                 suppress_health_check=[HealthCheck.too_slow])

JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"
BOUNDARY = "xYzZY"
MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def decode(raw: bytes, ctype: str | None) -> bodies.Body:
    """``admin.body.read`` on a real Starlette request carrying ``raw``."""
    headers = [(b"content-type", ctype.encode())] if ctype else []
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers,
             "query_string": b""}
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return asyncio.run(bodies.read(Request(scope, receive)))


def decoded_or_refused(raw: bytes, ctype: str | None) -> bodies.Body | None:
    try:
        result = decode(raw, ctype)
    except (BadRequest, UnsupportedMediaType):
        return None
    assert isinstance(result.data, dict)
    return result


def typed_and_validated(result: bodies.Body, entity_name: str) -> None:
    """What the DAO does next: form typing, shorthand rewrites, validation. Only a
    ``SchemaViolation`` (or another typed error) may come out."""
    entity = REGISTRY.entities[entity_name]
    data = result.data
    if result.form:
        data = bodies.infer_record(entity.record, data, CTX.plugin_schemas)
    try:
        for key, rewrite in entity.rewrites.items():
            if key in data:
                data = rewrite(dict(data))
        validate(entity.record, {**data, "id": "8a4f3b58-2c9f-4a4e-9d57-5c3c7f3d7a11",
                                 "created_at": 1, "updated_at": 1}, ctx=CTX)
    except SchemaViolation:
        pass
    except RampartsError as exc:
        assert exc.status < 500


# --------------------------------------------------------------------------- JSON

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=6),
    max_leaves=12)
field_names = st.sampled_from(sorted({f.name for e in REGISTRY.entities.values()
                                      for f in e.fields} | {"url", "config", "name"}))


@PROPS
@given(raw=st.binary(max_size=2000))
def test_json_bytes_decode_or_are_refused(raw: bytes) -> None:
    decoded_or_refused(raw, JSON_TYPE)


@settings(PROPS, max_examples=60)
@given(doc=st.dictionaries(field_names, json_values, max_size=8),
       entity=st.sampled_from(ENTITIES))
def test_json_documents_validate_or_are_refused(doc: dict[str, Any], entity: str) -> None:
    raw = json.dumps(doc).encode()
    result = decoded_or_refused(raw, JSON_TYPE)
    if result is not None:
        typed_and_validated(result, entity)


# --------------------------------------------------------------------------- forms

form_text = st.text(alphabet=st.sampled_from(list("ab1.[]&=%+5BD- \n\x00")) | st.characters(),
                    max_size=300)


@PROPS
@given(raw=form_text, entity=st.sampled_from(ENTITIES))
def test_urlencoded_bodies_decode_or_are_refused(raw: str, entity: str) -> None:
    result = decoded_or_refused(raw.encode("utf-8", "surrogatepass"), FORM_TYPE)
    if result is not None:
        assert result.form
        typed_and_validated(result, entity)


@PROPS
@given(pairs=st.lists(st.tuples(st.sampled_from(["tags", "protocols", "config", "snis",
                                                  "headers", "paths", "name", "a"])
                                | form_text,
                                st.lists(st.sampled_from(["[]", "[1]", "[2]", "[k]", ".x",
                                                          "[", "]", "."]), max_size=5),
                                st.text(max_size=30)), max_size=12),
       entity=st.sampled_from(ENTITIES))
def test_structured_form_keys(pairs: list[tuple[str, list[str], str]], entity: str) -> None:
    raw = "&".join(f"{k}{''.join(p)}={v}" for k, p, v in pairs)
    result = decoded_or_refused(raw.encode("utf-8", "surrogatepass"), FORM_TYPE)
    if result is not None:
        typed_and_validated(result, entity)


# --------------------------------------------------------------------------- multipart


def multipart(parts: list[tuple[str, bytes, bool]]) -> bytes:
    out = b""
    for name, value, as_file in parts:
        disposition = f'form-data; name="{name}"' + ('; filename="f"' if as_file else "")
        out += (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
                + value + b"\r\n")
    return out + f"--{BOUNDARY}--\r\n".encode()


@PROPS
@given(parts=st.lists(st.tuples(st.text(alphabet=st.characters(exclude_characters='"\r\n',
                                                              codec="utf-8"),
                                        max_size=20),
                                st.binary(max_size=200), st.booleans()), max_size=8),
       noise=st.binary(max_size=100), cut=st.integers(min_value=0, max_value=3000),
       entity=st.sampled_from(ENTITIES))
def test_multipart_bodies_decode_or_are_refused(parts: list[tuple[str, bytes, bool]],
                                                noise: bytes, cut: int, entity: str) -> None:
    raw = multipart(parts)
    for candidate in (raw, raw[:cut], noise + raw, raw + noise):
        result = decoded_or_refused(candidate, MULTIPART_TYPE)
        if result is not None:
            typed_and_validated(result, entity)


@PROPS
@given(raw=st.binary(max_size=500),
       ctype=st.sampled_from(["multipart/form-data", "multipart/form-data; boundary=",
                              MULTIPART_TYPE, "text/plain", "application/jsonx"]) | st.none())
def test_other_content_types(raw: bytes, ctype: str | None) -> None:
    decoded_or_refused(raw, ctype)


# --------------------------------------------------------------------------- linear time

hostile_units = st.lists(st.sampled_from(["[", "]", ".", "a", "=", "&", "%5B", "-----BEGIN A-----",
                                          "-----END B-----", "\n", " "]),
                         min_size=1, max_size=6).map("".join)


@settings(max_examples=25, deadline=None, database=None)
@given(unit=hostile_units, prefix=st.sampled_from(["", "a", "cert=", "tags[", "x="]))
def test_hostile_repetitions_decode_in_linear_time(unit: str, prefix: str) -> None:
    """A short pattern repeated to 200 kB decodes (or is refused) within a second: a
    quadratic parser needs minutes on some of these."""
    raw = (prefix + unit * (200_000 // len(unit))).encode()
    started = time.monotonic()
    decoded_or_refused(raw, FORM_TYPE)
    decoded_or_refused(raw, JSON_TYPE)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("depth", [bodies.MAX_DEPTH, bodies.MAX_DEPTH + 1, 100_000])
def test_json_nesting_cap(depth: int) -> None:
    raw = ('{"a":' + "[" * (depth - 1) + "]" * (depth - 1) + "}").encode()
    result = decoded_or_refused(raw, JSON_TYPE)
    assert (result is not None) == (depth <= bodies.MAX_DEPTH)
