"""What the terminator keeps per certificate (native credentials with the libssl bridge, one
context each without it): a reload builds at most ``eager`` of them (and never more than the
LRU holds), the LRU never holds more than ``cache_size``, and a certificate whose credential
or context was dropped is built again on its next handshake."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from gateway.tls import libssl
from gateway.tls.contexts import ServerPolicy
from gateway.tls.defaults import generated_pairs
from gateway.tls.native import Credential
from gateway.tls.store import CertEntry, CertIndex, TLSTerminator
from tests.pki import ec_pairs

ENTRIES = [CertEntry(id=f"id{i}", cert=c, key=k) for i, (c, k) in enumerate(ec_pairs(40))]
INDEX = CertIndex.build((f"c{i}.test", e) for i, e in enumerate(ENTRIES))


@pytest.fixture(scope="module")
def default_pairs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    return generated_pairs(Path(tmp_path_factory.mktemp("ssl")))


@pytest.fixture(params=["native", "contexts"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of serving a certificate: the bridge's, and the fallback without it."""
    if request.param == "contexts":
        monkeypatch.setattr(libssl, "BRIDGE", None)
    elif libssl.BRIDGE is None:
        pytest.skip("needs the libssl bridge")
    return str(request.param)


@pytest.mark.parametrize(("cache_size", "eager", "built"), [
    (100, 1000, 40),   # everything fits: all built before the swap
    (100, 10, 10),     # the eager threshold
    (5, 1000, 5),      # never more than the LRU keeps
    (100, 0, 0),       # all lazy
])
def test_prepare_builds_at_most_eager_and_cache_size(
        default_pairs: list[tuple[str, str]], mode: str, cache_size: int, eager: int,
        built: int) -> None:
    tls = TLSTerminator(ServerPolicy(), default_pairs, lambda: INDEX, cache_size=cache_size,
                        eager=eager)
    assert tls.prepare(INDEX, budget=60) == built
    assert tls.cached == built
    assert tls.prepare(INDEX, budget=60) == 0  # nothing new since the previous index


def test_the_lru_is_bounded_and_rebuilds_what_it_dropped(
        default_pairs: list[tuple[str, str]], mode: str) -> None:
    tls = TLSTerminator(ServerPolicy(), default_pairs, lambda: INDEX, cache_size=8, eager=0)
    kind = Credential if mode == "native" else ssl.SSLContext
    first = tls.served_for(ENTRIES[0])
    for entry in ENTRIES[1:]:
        served = tls.served_for(entry)
        assert isinstance(served, kind) and tls.cached <= 8
        assert _cert(served) == entry.cert
    again = tls.served_for(ENTRIES[0])  # dropped long ago: built anew, same certificate
    assert again is not first and _cert(again) == ENTRIES[0].cert
    assert tls.served_for(ENTRIES[0]) is again  # and now cached


def _cert(served: Credential | ssl.SSLContext) -> str:
    return str(getattr(served, "cert", None) or getattr(served, "ramparts_cert", None))
