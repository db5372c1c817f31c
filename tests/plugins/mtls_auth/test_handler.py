"""mtls-auth's access phase through the PDK objects the exchange builds: consumer lookup
order, the per-connection verdict, Kong's answers."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.plugins import phases
from gateway.plugins.directory import Directory, build_directory
from gateway.plugins.mtls_auth.handler import MtlsAuthHandler
from gateway.plugins.mtls_auth.verify import Verdict
from gateway.plugins.pdk import ClientView, Exit, Kong, RequestView
from gateway.plugins.runtime import Handler, Row, build_chains
from tests.pki import Pki

CA_ID = "c0000000-0000-4000-8000-000000000001"
OTHER_CA = "c0000000-0000-4000-8000-000000000002"


def consumers() -> list[dict[str, Any]]:
    return [{"id": f"u{i}", "username": name, "custom_id": custom}
            for i, (name, custom) in enumerate((("api-client", None), ("partner", "p-1"),
                                                ("byca", None), ("bycustom", "api-client")))]


def cred(subject: str, consumer: str, ca: str | None) -> dict[str, Any]:
    return {"id": subject + consumer, "subject_name": subject, "consumer": {"id": consumer},
            "ca_certificate": {"id": ca} if ca else None}


def directory(pki: Pki, creds: list[dict[str, Any]]) -> Directory:
    return build_directory({"consumers": consumers(), "mtls_auth_credentials": creds,
                            "ca_certificates": [{"id": CA_ID, "cert": pki.read("s003/ca.crt")},
                                                {"id": OTHER_CA,
                                                 "cert": pki.read("s001/rootCA.pem")}]})


def kong(pki: Pki, creds: list[dict[str, Any]], tls: dict[str, Any] | None,
         db: Directory | None = None) -> Kong:
    """A request; ``db``: the snapshot's directory (a new one, as after a reload, if not
    given)."""
    return Kong(request=RequestView("GET", "https", "h", 443, "/", b"", []),
                client=ClientView(ip="127.0.0.1", tls=tls), protocol="https",
                db=db or directory(pki, creds))


def handler(**config: Any) -> MtlsAuthHandler:
    return MtlsAuthHandler({"ca_certificates": [CA_ID], "consumer_by": ["username",
                                                                         "custom_id"],
                            "revocation_check_mode": "IGNORE_CA_ERROR", **config})


@pytest.mark.parametrize(("creds", "consumer_by", "expected"), [
    ([], ["username", "custom_id"], "api-client"),                      # consumer_by username
    ([], ["custom_id"], "bycustom"),
    ([], [], None),                                                      # -> 401
    ([cred("CN=api-client", "u1", None)], [], "partner"),                # seed 003's form
    ([cred("api-client", "u1", None), cred("api-client", "u2", CA_ID)], [], "byca"),
    ([cred("api-client", "u1", None), cred("api-client", "u2", OTHER_CA)], [], "partner"),
    ([cred("api-client", "u1", None)], ["username"], "partner"),          # credentials first
])
def test_consumer_lookup(pki: Pki, creds: list[dict[str, Any]], consumer_by: list[str],
                         expected: str | None) -> None:
    k = kong(pki, creds, {"client_cert_chain": [pki.read("s003/client.crt")],
                          "verdicts": {}})
    try:
        handler(consumer_by=consumer_by).access(k)
    except Exit as stop:
        assert expected is None and stop.status == 401
        assert k.ctx["client_verify"] == "FAILED:consumer not found"
        return
    assert expected is not None and k.client.consumer is not None
    assert k.client.consumer.username == expected
    assert k.service_request.set_headers[b"x-consumer-username"] == expected.encode()
    assert k.ctx["client_verify"] == "SUCCESS"


def test_the_chain_is_verified_once_per_connection(pki: Pki) -> None:
    tls: dict[str, Any] = {"client_cert_chain": [pki.read("s003/client.crt")], "verdicts": {}}
    plugin = handler()
    plugin.access(kong(pki, [], tls))
    (first,) = [v for v in tls["verdicts"].values() if isinstance(v, Verdict)]
    plugin.access(kong(pki, [], tls))  # the same connection after a reload (a new directory)
    (second,) = [v for v in tls["verdicts"].values() if isinstance(v, Verdict)]
    assert second is first


@pytest.mark.parametrize(("config", "replayed"), [
    ({}, True),
    ({"revocation_check_mode": "SKIP"}, True),
    ({"skip_consumer_lookup": True, "authenticated_group_by": "CN"}, True),
])
def test_a_success_is_replayed_on_the_connection(pki: Pki, config: dict[str, Any],
                                                 replayed: bool) -> None:
    """The runtime replays a connection-scoped success (``Kong.recorded``) unless the
    plugin said its answer ages; a chain without revocation sources holds for the
    connection's life."""
    tls: dict[str, Any] = {"client_cert_chain": [pki.read("s003/client.crt")], "verdicts": {}}
    k = kong(pki, [], tls)
    handler(**config).access(k)
    assert k.ctx["client_verify"] == "SUCCESS"
    assert (k.recorded("chain") is not None) is replayed
    assert b"x-client-cert-dn" in k.service_request.cleared or \
        b"x-client-cert-dn" in k.service_request.set_headers


@pytest.mark.parametrize(("tls", "config", "status", "verify"), [
    (None, {}, 401, "NONE"),                                            # plain HTTP
    ({"client_cert_chain": [], "verdicts": {}}, {}, 401, "NONE"),
    ({"chain": "s001/client.crt"}, {}, 401, "FAILED:"),
    ({"chain": "s003/client.crt"}, {"revocation_check_mode": "STRICT"}, 401, "FAILED:"),
    ({"chain": "s003/client.crt"}, {"ca_certificates": ["c0000000-0000-4000-8000-00000000dead"]},
     500, None),
])
def test_failures(pki: Pki, tls: dict[str, Any] | None, config: dict[str, Any], status: int,
                  verify: str | None) -> None:
    if tls and "chain" in tls:
        tls = {"client_cert_chain": [pki.read(tls["chain"])], "verdicts": {}}
    k = kong(pki, [], tls)
    with pytest.raises(Exit) as stop:
        handler(**config).access(k)
    assert stop.value.status == status
    if verify is not None:
        assert k.ctx["client_verify"].startswith(verify)


class Tag(Handler):
    """Runs after mtls-auth (priority 1600) and says which of its instances ran."""

    name = "tag"
    PRIORITY = 900

    def access(self, kong: Kong) -> None:
        kong.service_request.set_header("X-Tag", str(self.config["tag"]))


async def test_consumer_scoped_config_applies_once_mtls_auth_named_the_consumer(
        pki: Pki) -> None:
    def row(name: str, ident: str, consumer: str | None = None, **config: Any) -> Row:
        return Row(id=ident, name=name, route="r1", service=None, consumer=consumer,
                   config=config, protocols=("https",))

    chains = build_chains(
        [row("mtls-auth", "m", ca_certificates=[CA_ID], consumer_by=["username"],
             revocation_check_mode="SKIP"),
         row("tag", "t-route", tag="route"), row("tag", "t-u0", consumer="u0", tag="u0")],
        {"r1": None}, {"mtls-auth": MtlsAuthHandler, "tag": Tag})
    for chain_pem, expected in (("s003/client.crt", b"u0"), ("s001/client.crt", None)):
        k = kong(pki, [], {"client_cert_chain": [pki.read(chain_pem)], "verdicts": {}})
        try:
            await phases.run(chains.for_route("r1"), "access", k)
        except Exit:
            assert expected is None  # not identified: mtls-auth's 401 ends the chain
            continue
        assert k.service_request.set_headers[b"x-tag"] == expected  # api-client is u0
