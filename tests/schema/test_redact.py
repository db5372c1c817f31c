"""Masking key material out of write bodies: each rule, table-driven."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest

from gateway.schema import redact
from gateway.schema.compile import RecordSchema, compile_record
from gateway.schema.entities.certificates import CERTIFICATES
from gateway.schema.entities.plugins import PLUGINS
from gateway.schema.fields import Secret
from gateway.schema.redact import MASK, masked, scrub

PEM_KEY = ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
           "-----END PRIVATE KEY-----\n")
RSA_KEY = PEM_KEY.replace("PRIVATE KEY", "RSA PRIVATE KEY")
CERT = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class Credential:
    user: str
    password: Annotated[str, Secret()]


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """A plugin config with secrets at every depth the schema machinery allows."""

    api_token: Annotated[str | None, Secret()] = None
    upstream: Credential | None = None
    credentials: tuple[Credential, ...] = ()
    tokens: Mapping[str, Annotated[str, Secret()]] = field(default_factory=dict)
    note: str | None = None


CONFIG: RecordSchema = compile_record(Config)
PLUGIN_SCHEMAS = {"secretive": CONFIG}


@pytest.mark.parametrize(("data", "expected"), [
    # the schema marks key and key_alt Secret; cert is kept, null stays null
    ({"cert": CERT, "key": PEM_KEY, "key_alt": None, "snis": ["a.test"]},
     {"cert": CERT, "key": MASK, "key_alt": None, "snis": ["a.test"]}),
    # the name alone is enough, whatever the value looks like
    ({"key": "not even a PEM", "key_alt": "x"}, {"key": MASK, "key_alt": MASK}),
    # private-key text anywhere: a key pasted into the certificate field, inside arrays
    ({"cert": CERT + RSA_KEY, "tags": ["ok", PEM_KEY]},
     {"cert": MASK, "tags": ["ok", MASK]}),
    # form-urlencoded bodies that were not decoded leave `+` between the words
    ({"cert": "-----BEGIN+PRIVATE+KEY-----"}, {"cert": MASK}),
    # a field the schema does not know is masked by the schema-free rules
    ({"extra": {"key": "k", "deep": [{"key_alt": "k2"}], "keep": 1}},
     {"extra": {"key": MASK, "deep": [{"key_alt": MASK}], "keep": 1}}),
])
def test_certificate_bodies(data: dict[str, Any], expected: dict[str, Any]) -> None:
    assert masked(CERTIFICATES.record, data) == expected


def test_plugin_config_secrets_follow_the_plugin_schema() -> None:
    body = {"name": "secretive", "config": {
        "api_token": "t0ps3cret", "note": "visible",
        "upstream": {"user": "u", "password": "p1"},
        "credentials": [{"user": "a", "password": "p2"}, {"user": "b", "password": "p3"}],
        "tokens": {"alice": "p4"}}}
    out = masked(PLUGINS.record, body, PLUGIN_SCHEMAS)
    assert out["config"] == {
        "api_token": MASK, "note": "visible", "upstream": {"user": "u", "password": MASK},
        "credentials": [{"user": "a", "password": MASK}, {"user": "b", "password": MASK}],
        "tokens": {"alice": MASK}}
    # PATCH without `name`: the stored plugin's name says which schema applies
    patch = masked(PLUGINS.record, {"config": {"api_token": "x"}}, PLUGIN_SCHEMAS,
                   plugin="secretive")
    assert patch == {"config": {"api_token": MASK}}
    # an unknown plugin: no schema, the generic rules still apply
    unknown = masked(PLUGINS.record, {"name": "other", "config": {"key": "k", "n": PEM_KEY}},
                     PLUGIN_SCHEMAS)
    assert unknown["config"] == {"key": MASK, "n": MASK}


@pytest.mark.parametrize(("value", "expected"), [
    ("plain", "plain"),
    (PEM_KEY, MASK),
    ("-----begin ec private key-----", MASK),
    ({PEM_KEY: "v"}, {MASK: "v"}),
    ([1, None, True, {"key": None}], [1, None, True, {"key": None}]),
    (CERT, CERT),
])
def test_scrub(value: Any, expected: Any) -> None:
    assert scrub(value) == expected


@pytest.mark.parametrize(("value", "limit", "expected"), [
    ({"a": 1}, 5, False),
    ({"tags": ["t"] * 3}, 5, False),           # the dict, the list and three tags
    ({"tags": ["t"] * 4}, 5, True),
    ([[[[["deep"]]]]], 6, False),
    ([[[[["deep"]]]]], 5, True),
    ({"tags": ["t"] * 100_000}, 5_000, True),
])
def test_more_values_than(value: Any, limit: int, expected: bool) -> None:
    assert redact.more_values_than(value, limit) is expected


def test_a_huge_body_is_recorded_by_field_name_only() -> None:
    data = {"host": "h", "tags": ["t"] * 100_000, "key": "secret"}
    assert redact.masked(None, data) == {"host": redact.TOO_LARGE, "tags": redact.TOO_LARGE,
                                         "key": redact.TOO_LARGE}
