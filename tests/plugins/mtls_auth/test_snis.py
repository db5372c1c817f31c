"""The SNI set: which handshakes get a CertificateRequest (Kong's rules, kong.md §6.2)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.plugins.mtls_auth.snis import build_sni_set

CA = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n"


def plugin(route: str | None = None, service: str | None = None, enabled: bool = True,
           name: str = "mtls-auth", send_ca_dn: bool = False) -> dict[str, Any]:
    return {"name": name, "enabled": enabled, "route": {"id": route} if route else None,
            "service": {"id": service} if service else None,
            "config": {"ca_certificates": ["ca1"], "send_ca_dn": send_ca_dn}}


ROUTES: list[dict[str, Any]] = [
    {"id": "r1", "service": {"id": "s1"}, "snis": ["a.test", "*.wild.test", "pre.*"]},
    {"id": "r2", "service": {"id": "s1"}, "snis": None},
    {"id": "r3", "service": {"id": "s2"}, "snis": ["only.test"]}]


@pytest.mark.parametrize(("plugins", "sni", "asked"), [
    ([], "a.test", False),
    ([plugin()], None, True),                                   # global -> every handshake
    ([plugin()], "anything.test", True),
    ([plugin(route="r1")], "a.test", True),
    ([plugin(route="r1")], "A.TEST.", True),
    ([plugin(route="r1")], "x.y.wild.test", True),              # postfix, any depth
    ([plugin(route="r1")], "pre.example", True),                # prefix wildcard
    ([plugin(route="r1")], "b.test", False),
    ([plugin(route="r1")], None, False),                        # no SNI: only under *
    ([plugin(route="r2")], "b.test", True),                     # a route without snis -> *
    ([plugin(route="r2")], None, True),
    ([plugin(service="s2")], "only.test", True),                # a service: its routes' snis
    ([plugin(service="s2")], "a.test", False),
    ([plugin(service="s1")], "zzz.test", True),                 # ... r2 has none -> *
    ([plugin(route="r2", enabled=False)], "b.test", False),
    ([plugin(route="r2", name="acl")], "b.test", False),
])
def test_which_handshakes_ask(plugins: list[dict[str, Any]], sni: str | None,
                              asked: bool) -> None:
    snis = build_sni_set(plugins, ROUTES, {"ca1": CA})
    assert (snis.match(sni) is not None) is asked


def test_send_ca_dn_names_the_cas_of_the_plugins_sharing_a_key() -> None:
    quiet = build_sni_set([plugin(route="r3")], ROUTES, {"ca1": CA})
    assert quiet.match("only.test") == ()
    named = build_sni_set([plugin(route="r3", send_ca_dn=True), plugin(route="r3")], ROUTES,
                          {"ca1": CA})
    assert named.match("only.test") == (b"\x00\x01\x02",)


def test_the_fallback_trusts_the_cas_of_every_enabled_plugin() -> None:
    other = CA.replace("AAEC", "AAED")
    snis = build_sni_set([plugin(route="r3"), plugin(route="r1", enabled=False)], ROUTES,
                         {"ca1": CA, "ca2": other})
    assert snis.ca_pems == (CA,)
    assert build_sni_set([], ROUTES, {"ca1": CA}).ca_pems == ()
