"""Deterministic ids: the values Kong's own Go client (go-kong, ``FillID``) expects for the
same names, so that a file without ids gets the ids Kong would give it."""

from __future__ import annotations

import json

import pytest

from gateway import registry
from gateway.db.store import Store
from gateway.declarative import ids
from gateway.declarative.parse import parse_text

KNOWN = [("services", "some.service.name", "d9bee1f8-db6e-5a37-9281-fd4aca16dc00"),
         ("routes", "some.service.name", "7f0753cd-bff2-5f74-85b0-e8e2057d9500"),
         ("consumers", "some.username", "782780c4-d345-5682-bdf6-722dccaf93e0")]


@pytest.mark.parametrize(("entity", "key", "expected"), KNOWN)
def test_generate_matches_kong(entity: str, key: str, expected: str) -> None:
    assert ids.generate(entity, key) == expected


def test_a_file_without_ids_gets_kongs_ids() -> None:
    doc = {"_format_version": "3.0",
           "services": [{"name": "some.service.name", "host": "b.test", "routes": [
               {"name": "some.service.name", "paths": ["/"]}]}],
           "consumers": [{"username": "some.username"}]}
    config = parse_text(Store("sqlite://", registry.build()), json.dumps(doc))
    got = {(name, e.values.get("name") or e.values.get("username")): e.values["id"]
           for name, entries in config.entries.items() for e in entries}
    assert got == {(entity, key): expected for entity, key, expected in KNOWN}


def test_an_entity_without_key_gets_a_random_id() -> None:
    schema = registry.build().entities["ca_certificates"]
    assert ids.key_for(schema, {"cert": "x"}, None, None) is None
    assert ids.assign(schema, {"cert": "x"}) != ids.assign(schema, {"cert": "x"})
