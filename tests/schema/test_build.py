"""Typed records from validated values: arrays as tuples, maps read-only, foreign keys as
Ref, nested records built, unset and null values as they are."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from gateway.schema.build import build
from gateway.schema.compile import Ref
from gateway.schema.entities.routes import ROUTES
from gateway.schema.entities.upstreams import UPSTREAMS
from gateway.schema.validate import validate


def route(**fields: Any) -> Any:
    return build(ROUTES.record, validate(ROUTES.record, {
        "id": "5b6c0d9e-8f0a-4b1c-9d2e-3f4a5b6c7d8e", "created_at": 1, "updated_at": 1,
        **fields}))


def test_arrays_maps_and_references() -> None:
    r = route(paths=["/a", "/b"], headers={"x-v": ["1", "2"]}, hosts=None,
              service={"id": "0c1d2e3f-4a5b-4c6d-8e7f-8a9b0c1d2e3f"})
    assert r.paths == ("/a", "/b")
    assert isinstance(r.headers, MappingProxyType) and dict(r.headers) == {"x-v": ("1", "2")}
    assert r.hosts is None
    assert r.service == Ref("0c1d2e3f-4a5b-4c6d-8e7f-8a9b0c1d2e3f")
    assert r.protocols == ("http", "https") and r.strip_path is True  # defaults


def test_nested_records_are_built() -> None:
    upstream = build(UPSTREAMS.record, validate(UPSTREAMS.record, {
        "id": "5b6c0d9e-8f0a-4b1c-9d2e-3f4a5b6c7d8e", "created_at": 1, "name": "u",
        "healthchecks": {"active": {"type": "https", "healthy": {"http_statuses": [200]}}}}))
    active = upstream.healthchecks.active
    assert active.type == "https" and active.healthy.http_statuses == (200,)
    assert isinstance(active.unhealthy.http_statuses, tuple)  # a default list, as a tuple
