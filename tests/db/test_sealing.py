"""gateway/db/sealing.py: one marker, ``m.Secret``, decides what is sealed, at any depth and
in any plugin's config."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Annotated

import pytest

from gateway.db.sealing import drop_secrets, entity_has_secrets, open_row, replaced, seal_row
from gateway.keyring import is_sealed, parse
from gateway.schema.compile import compile_record
from gateway.schema.entities.certificates import CERTIFICATES, SNIS
from gateway.schema.entities.plugins import PLUGINS
from gateway.schema.fields import Secret

RING = parse("k1:" + base64.b64encode(b"k" * 32).decode(), "test")
ID = "6f0a3c1e-1111-4b6f-9a3e-2a1d6c0b9e77"


@dataclass(frozen=True, slots=True, kw_only=True)
class Upstream:
    token: Annotated[str | None, Secret()] = None
    url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VaultConfig:
    client_id: str | None = None
    client_secret: Annotated[str | None, Secret()] = None
    upstream: Upstream | None = None
    backup_codes: Annotated[tuple[str, ...], Secret()] = ()


PLUGIN_SCHEMAS = {"vault-auth": compile_record(VaultConfig)}


def test_which_entities_have_secrets() -> None:
    assert entity_has_secrets(CERTIFICATES, {})
    assert not entity_has_secrets(SNIS, PLUGIN_SCHEMAS)
    assert not entity_has_secrets(PLUGINS, {})
    assert entity_has_secrets(PLUGINS, PLUGIN_SCHEMAS)


def test_certificate_keys_are_sealed_and_nothing_else() -> None:
    row = {"id": ID, "cert": "CERT", "key": "KEY", "cert_alt": None, "key_alt": None,
           "tags": ["a"]}
    sealed = seal_row(CERTIFICATES, RING, row, {})
    assert is_sealed(sealed["key"]) and sealed["key_alt"] is None
    assert {k: v for k, v in sealed.items() if k != "key"} == \
        {k: v for k, v in row.items() if k != "key"}
    assert open_row(CERTIFICATES, RING, sealed, {}) == row
    assert seal_row(CERTIFICATES, None, row, {}) == row  # no keyring: as given
    assert drop_secrets(CERTIFICATES, row, {}) == {
        "id": ID, "cert": "CERT", "cert_alt": None, "tags": ["a"]}


def test_plugin_config_secrets_at_any_depth() -> None:
    row = {"id": ID, "name": "vault-auth", "enabled": True,
           "config": {"client_id": "app", "client_secret": "s3cr3t",
                      "upstream": {"token": "tok", "url": "https://x"},
                      "backup_codes": ["c1", "c2"]}}
    sealed = seal_row(PLUGINS, RING, row, PLUGIN_SCHEMAS)
    config = sealed["config"]
    assert config["client_id"] == "app" and config["upstream"]["url"] == "https://x"
    assert is_sealed(config["client_secret"]) and is_sealed(config["upstream"]["token"])
    assert all(is_sealed(c) for c in config["backup_codes"])
    assert open_row(PLUGINS, RING, sealed, PLUGIN_SCHEMAS) == row
    assert drop_secrets(PLUGINS, row, PLUGIN_SCHEMAS)["config"] == {
        "client_id": "app", "upstream": {"url": "https://x"}}
    # another plugin's config (no schema with secrets) is left alone
    other = {**row, "name": "acl"}
    assert seal_row(PLUGINS, RING, other, PLUGIN_SCHEMAS) == other


@pytest.mark.parametrize(("patch", "label", "expected"), [
    ({"key": "new"}, "key", True),
    ({"tags": ["x"]}, "key", False),
    ({"config": {"client_id": "b"}}, "config.client_secret", False),  # records merge
    ({"config": {"client_secret": "n"}}, "config.client_secret", True),
    ({"config": None}, "config.client_secret", True),
    ({"config": {"upstream": {"url": "u"}}}, "config.upstream.token", False),
    ({"config": {"backup_codes": []}}, "config.backup_codes.0", True),  # arrays: replaced
])
def test_which_values_a_patch_replaces(patch: dict[str, object], label: str,
                                       expected: bool) -> None:
    assert replaced(patch, label) is expected
