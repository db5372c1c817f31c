"""The declarative parser: nesting, Kong's ids, references, migrations, vault references and
Kong's nested error format. Pure: the store is never connected."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from gateway import registry
from gateway.db.store import Store
from gateway.declarative.parse import Config, parse_text
from gateway.errors import DeclarativeSyntaxError, InvalidDeclarativeConfig
from tests.pki import Pki
from tests.seeds import SEED_003_CA_ID, SEED_003_KONG_YML

KONG_NS = uuid.UUID("fd02801f-0957-4a15-a55a-c8d9606f30b5")


def kong_id(entity: str, key: str) -> str:
    return str(uuid.uuid5(uuid.uuid5(KONG_NS, entity), key))


@pytest.fixture(scope="module")
def st() -> Iterator[Store]:
    yield Store("sqlite://", registry.build())


def parse(st: Store, doc: dict[str, Any] | str, env: dict[str, str] | None = None) -> Config:
    return parse_text(st, doc if isinstance(doc, str) else json.dumps(doc), env)


def errors_of(st: Store, doc: dict[str, Any] | str, env: dict[str, str] | None = None
              ) -> InvalidDeclarativeConfig:
    with pytest.raises(InvalidDeclarativeConfig) as info:
        parse(st, doc, env)
    return info.value


def one(config: Config, entity: str, **match: Any) -> dict[str, Any]:
    found = [e.values for e in config.entries[entity]
             if all(e.values.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (entity, match, found)
    return found[0]


NESTED = """
_format_version: "3.0"
_comment: the whole gateway
services:
- name: svc
  url: https://backend.internal:8443/api
  _comment: nested children by table name
  routes:
  - name: r1
    paths: [/api]
    plugins:
    - name: acl
      config: {allow: [admins]}
upstreams:
- name: up
  targets:
  - target: 10.0.0.1:8443
consumers:
- username: alice
  _ignore: [anything, {at: all}]
  acls:
  - group: admins
"""


def test_nested_entities_get_their_parent_and_kongs_ids(st: Store) -> None:
    config = parse(st, NESTED)
    svc = one(config, "services", name="svc")
    assert svc["id"] == kong_id("services", "svc")
    assert (svc["protocol"], svc["host"], svc["port"], svc["path"]) == \
        ("https", "backend.internal", 8443, "/api")
    route = one(config, "routes", name="r1")
    assert route["id"] == kong_id("routes", "r1")
    assert route["service"] == {"id": svc["id"]}
    plugin = one(config, "plugins", name="acl")
    # a plugin's id hashes its cache key: name, route, service, consumer
    assert plugin["id"] == kong_id("plugins", f"plugins:acl:{route['id']}::")
    assert plugin["route"] == {"id": route["id"]}
    upstream = one(config, "upstreams", name="up")
    target = one(config, "targets", target="10.0.0.1:8443")
    # targets' endpoint key is not unique: the parent's id is appended
    assert target["id"] == kong_id("targets", f"10.0.0.1:8443:{upstream['id']}")
    consumer = one(config, "consumers", username="alice")
    acl = one(config, "acls", group="admins")
    assert acl["id"] == kong_id("acls", f"acls:{consumer['id']}:admins")
    assert acl["consumer"] == {"id": consumer["id"]}
    again = parse(st, NESTED).rows()  # stable across parses
    assert {n: set(r) for n, r in again.items()} == {n: set(r) for n, r in config.rows().items()}


def test_top_level_references_by_id_or_endpoint_key(st: Store, pki: Pki) -> None:
    cert_id, ca_id = str(uuid.uuid4()), str(uuid.uuid4())
    config = parse(st, {
        "_format_version": "3.0",
        "certificates": [{"id": cert_id, "cert": pki.read("s003/server.crt"),
                          "key": pki.read("s003/server.key"), "snis": ["kong-server"]}],
        "snis": [{"name": "other.test", "certificate": cert_id}],
        "ca_certificates": [{"id": ca_id, "cert": pki.read("s003/ca.crt")}],
        "services": [{"name": "svc", "host": "b.test", "protocol": "https",
                      "client_certificate": cert_id,
                      "ca_certificates": [ca_id]}],
        "routes": [{"name": "r", "paths": ["/"], "service": "svc"}],
        "consumers": [{"username": "bob"}],
        "plugins": [{"name": "mtls-auth", "route": "r", "config": {"ca_certificates": [ca_id]}},
                    {"name": "acl", "service": {"name": "svc"}, "config": {"deny": ["x"]}}],
        "mtls_auth_credentials": [{"consumer": "bob", "subject_name": "CN=api-client"}],
    })
    svc = one(config, "services", name="svc")
    assert svc["client_certificate"] == {"id": cert_id}
    assert one(config, "routes", name="r")["service"] == {"id": svc["id"]}
    assert one(config, "plugins", name="acl")["service"] == {"id": svc["id"]}
    names = {e.values["name"]: e.values["certificate"] for e in config.entries["snis"]}
    assert names == {"kong-server": {"id": cert_id}, "other.test": {"id": cert_id}}
    cred = one(config, "mtls_auth_credentials", subject_name="CN=api-client")
    assert cred["consumer"] == {"id": one(config, "consumers", username="bob")["id"]}


@pytest.mark.parametrize(("version", "expected"), [
    ("2.1", ["/plain", "~/items/\\d+"]), ("1.1", ["/plain", "~/items/\\d+"]),
    ("3.0", ["/plain", "/items/\\d+"])])
def test_old_formats_mark_regex_paths(st: Store, version: str, expected: list[str]) -> None:
    config = parse(st, {"_format_version": version, "services": [
        {"name": "s", "url": "http://b.test", "routes": [
            {"name": "r", "paths": ["/plain", "/items/\\d+"]}]}]})
    assert one(config, "routes", name="r")["paths"] == expected


def test_seed_003_example_loads(st: Store) -> None:
    config = parse(st, SEED_003_KONG_YML)
    plugin = one(config, "plugins", name="mtls-auth")
    assert plugin["config"]["ca_certificates"] == [SEED_003_CA_ID]
    assert plugin["config"]["revocation_check_mode"] == "STRICT"


def test_vault_env_references_resolve_at_parse_time(st: Store, pki: Pki) -> None:
    doc = {"_format_version": "3.0", "certificates": [
        {"cert": pki.read("s003/server.crt"), "key": "{vault://env/h12-server-key}"}]}
    config = parse(st, doc, env={"H12_SERVER_KEY": pki.read("s003/server.key")})
    assert config.entries["certificates"][0].values["key"] == pki.read("s003/server.key")
    err = errors_of(st, doc, env={})
    assert err.fields == {"certificates": [{"key": (
        "unable to resolve reference {vault://env/h12-server-key} "
        "(environment variable H12_SERVER_KEY is not set)")}]}


def test_every_error_is_located_in_kongs_nested_format(st: Store, pki: Pki) -> None:
    good_cert = {"cert": pki.read("s003/server.crt"), "key": pki.read("s003/server.key")}
    err = errors_of(st, {
        "_format_version": "3.0",
        "certificates": [good_cert, {"cert": "-----BEGIN CERTIFICATE-----\nnope\n"
                                             "-----END CERTIFICATE-----\n",
                                     "key": pki.read("s003/server.key")}],
        "services": [
            {"name": "a", "host": "a.test", "routes": [
                {"name": "ok", "paths": ["/"]},
                {"name": "bad", "paths": ["/"], "bogus": 1}]},
            {"name": "a", "host": "b.test"}],
        "plugins": [{"name": "no-such-plugin"}],
    })
    assert err.status == 400 and err.code == 14
    fields = err.fields
    assert set(fields) == {"certificates", "services", "plugins"}
    assert fields["certificates"][0] is None and "cert" in fields["certificates"][1]
    assert fields["services"] == [
        {"routes": [None, {"bogus": "unknown field"}]},
        "uniqueness violation: 'services' entity with name set to 'a' already declared"]
    assert fields["plugins"] == [{"name": "plugin 'no-such-plugin' not enabled; add it to "
                                          "the 'plugins' configuration property"}]
    assert err.message.startswith("declarative config is invalid: {")


def test_dangling_reference_is_keyed_by_the_entry(st: Store) -> None:
    err = errors_of(st, {"_format_version": "3.0",
                         "services": [{"name": "s", "host": "b.test"}],
                         "routes": [{"name": "r", "paths": ["/"], "service": "nope"}]})
    assert err.fields == {"routes": {"r": [
        "invalid reference 'service: nope' (no such entry in 'services')"]}}


@pytest.mark.parametrize("ref", [{"protocol": "http"}, {"name": None}])
def test_reference_without_key_is_missing_primary_key(st: Store, ref: dict[str, Any]) -> None:
    err = errors_of(st, {"_format_version": "3.0",
                         "routes": [{"name": "r", "paths": ["/"], "service": ref}]})
    assert err.fields == {"routes": [{"service": {"id": "missing primary key"}}]}


def test_flattened_errors(st: Store) -> None:
    err = errors_of(st, {"_format_version": "3.0", "services": [
        {"name": "s", "host": "b.test", "port": 70000, "tags": ["t"]}]})
    err.with_flattened = True
    flat = err.body()["flattened_errors"]
    # Kong: the entry as written (no generated id), its errors; `fields` left empty
    assert flat == [{"entity_type": "service", "entity_name": "s", "entity_tags": ["t"],
                     "entity": {"name": "s", "host": "b.test", "port": 70000, "tags": ["t"]},
                     "errors": [{"type": "field", "field": "port",
                                 "message": "value should be between 0 and 65535"}]}]
    assert err.body()["fields"] == {}
    assert err.body()["message"] == "declarative config is invalid: {}"


@pytest.mark.parametrize(("doc", "fields"), [
    ({}, {"_format_version": "required field missing"}),
    ({"_format_version": "4.0"}, {"_format_version": "expected one of: 1.1, 2.1, 3.0"}),
    ({"_format_version": "3.0", "servics": []}, {"servics": "unknown field"}),
    ({"_format_version": "3.0", "services": {"name": "x"}}, {"services": "expected an array"}),
    ({"_format_version": "3.0", "services": ["x"]}, {"services": ["expected a record"]}),
])
def test_top_level_errors(st: Store, doc: dict[str, Any], fields: dict[str, Any]) -> None:
    assert errors_of(st, doc).fields == fields


@pytest.mark.parametrize("text", ["services: [", "- a list", "\xff"])
def test_not_a_declarative_document(st: Store, text: str) -> None:
    with pytest.raises(DeclarativeSyntaxError) as info:
        parse_text(st, text.encode("latin-1"))
    assert str(info.value).startswith("failed parsing declarative configuration: ")


def test_one_plugin_per_name_and_scope(st: Store) -> None:
    plugin = {"name": "acl", "config": {"allow": ["a"]}}
    err = errors_of(st, {"_format_version": "3.0", "services": [
        {"name": "s", "host": "b.test", "plugins": [
            {**plugin, "id": str(uuid.uuid4())}, {**plugin, "id": str(uuid.uuid4())}]}]})
    service_id = kong_id("services", "s")
    assert err.fields == {"services": [{"plugins": [None, (
        f"uniqueness violation: 'plugins' entity with name=acl, route=null, "
        f"service={service_id}, consumer=null already declared")]}]}


def test_nested_entry_with_id_is_flattened_with_its_parent(st: Store) -> None:
    consumer_id, first, second = (str(uuid.uuid4()) for _ in range(3))
    err = errors_of(st, {"_format_version": "3.0", "consumers": [
        {"id": consumer_id, "username": "c", "acls": [
            {"id": first, "group": "g"}, {"id": first, "group": "h", "tags": ["x"]},
            {"id": second, "group": "g", "bogus": 1}]}]})
    assert err.fields == {"consumers": [{"acls": [
        None, f"uniqueness violation: 'acls' entity with primary key set to '{first}' already "
              "declared",
        {"bogus": "unknown field"}]}]}
    flat = {f["entity_id"]: f for f in err.flattened if "entity_id" in f}
    assert flat[first]["entity"] == {"id": first, "group": "h", "tags": ["x"],
                                     "consumer": {"id": consumer_id}}
    assert flat[first]["entity_type"] == "acl" and flat[first]["entity_tags"] == ["x"]
    assert flat[first]["errors"] == [{"type": "entity", "message": (
        f"uniqueness violation: 'acls' entity with primary key set to '{first}' already "
        "declared")}]


@pytest.mark.parametrize("text", ['_format_version: "3.0"\nservices:\n',
                                  '{"_format_version": "3.0", "services": {}}'])
def test_an_empty_list_may_be_written_as_nothing(st: Store, text: str) -> None:
    assert parse(st, text).rows() == {}
