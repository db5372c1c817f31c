"""IANA numbers used by KrakenD's ``tls``/``client_tls`` blocks, mapped to OpenSSL names.

Pure data: the settings validator checks numbers against it; the TLS layer turns the chosen
numbers into OpenSSL cipher strings, TLS 1.3 ciphersuite lists and group lists.
"""

from __future__ import annotations

TLS13_SUITES: dict[int, str] = {
    4865: "TLS_AES_128_GCM_SHA256",
    4866: "TLS_AES_256_GCM_SHA384",
    4867: "TLS_CHACHA20_POLY1305_SHA256",
}

# Seed 000's default TLS 1.2 suites first, then the legacy ones it lists as "not recommended".
TLS12_SUITES: dict[int, str] = {
    49199: "ECDHE-RSA-AES128-GCM-SHA256",
    49200: "ECDHE-RSA-AES256-GCM-SHA384",
    52392: "ECDHE-RSA-CHACHA20-POLY1305",
    49196: "ECDHE-ECDSA-AES256-GCM-SHA384",
    52393: "ECDHE-ECDSA-CHACHA20-POLY1305",
    49195: "ECDHE-ECDSA-AES128-GCM-SHA256",
}

LEGACY_SUITES: dict[int, str] = {
    5: "RC4-SHA",
    10: "DES-CBC3-SHA",
    47: "AES128-SHA",
    53: "AES256-SHA",
    60: "AES128-SHA256",
    156: "AES128-GCM-SHA256",
    157: "AES256-GCM-SHA384",
    49159: "ECDHE-ECDSA-RC4-SHA",
    49161: "ECDHE-ECDSA-AES128-SHA",
    49162: "ECDHE-ECDSA-AES256-SHA",
    49169: "ECDHE-RSA-RC4-SHA",
    49170: "ECDHE-RSA-DES-CBC3-SHA",
    49171: "ECDHE-RSA-AES128-SHA",
    49172: "ECDHE-RSA-AES256-SHA",
    49187: "ECDHE-ECDSA-AES128-SHA256",
    49191: "ECDHE-RSA-AES128-SHA256",
}

ALL_SUITES: dict[int, str] = {**TLS13_SUITES, **TLS12_SUITES, **LEGACY_SUITES}

DEFAULT_SUITES = (4865, 4866, 4867)

CURVES: dict[int, str] = {23: "P-256", 24: "P-384", 25: "P-521", 29: "X25519"}
DEFAULT_CURVES = (23, 24, 25)

VERSIONS = ("SSL3.0", "TLS10", "TLS11", "TLS12", "TLS13")


def version_rank(name: str) -> int:
    return VERSIONS.index(name)
