"""``san_dirname_matcher`` (Kong 3.14): the attributes of a SAN DirectoryName that join the
subject names mtls-auth looks consumers up by.

Kong's definition: a list of attribute names, each an OID, OpenSSL's long name or its short
name (``2.5.4.3``, ``commonName``, ``CN``), matched case-sensitively; empty (the default)
means every attribute of the DirectoryName. Only the consumer lookup uses them (not the
``skip_consumer_lookup`` headers). The values take the DirectoryName's place among the SAN
values, in the certificate's attribute order; the CN still comes last.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509

# OpenSSL's short and long names of the attributes a DN carries (its objects.txt); an
# attribute not listed here is matched by its dotted OID only
_NAMES: dict[str, tuple[str, str]] = {
    "2.5.4.3": ("CN", "commonName"),
    "2.5.4.4": ("SN", "surname"),
    "2.5.4.5": ("serialNumber", "serialNumber"),
    "2.5.4.6": ("C", "countryName"),
    "2.5.4.7": ("L", "localityName"),
    "2.5.4.8": ("ST", "stateOrProvinceName"),
    "2.5.4.9": ("street", "streetAddress"),
    "2.5.4.10": ("O", "organizationName"),
    "2.5.4.11": ("OU", "organizationalUnitName"),
    "2.5.4.12": ("title", "title"),
    "2.5.4.13": ("description", "description"),
    "2.5.4.17": ("postalCode", "postalCode"),
    "2.5.4.42": ("GN", "givenName"),
    "2.5.4.43": ("initials", "initials"),
    "2.5.4.44": ("generationQualifier", "generationQualifier"),
    "2.5.4.46": ("dnQualifier", "dnQualifier"),
    "2.5.4.65": ("pseudonym", "pseudonym"),
    "2.5.4.97": ("organizationIdentifier", "organizationIdentifier"),
    "0.9.2342.19200300.100.1.1": ("UID", "userId"),
    "0.9.2342.19200300.100.1.25": ("DC", "domainComponent"),
    "1.2.840.113549.1.9.1": ("emailAddress", "emailAddress"),
}

# a SAN value as the lookup needs it: a plain value, or a DirectoryName's (OID, value) pairs
SanPart = str | tuple[tuple[str, str], ...]


def directory_pairs(name: x509.Name) -> tuple[tuple[str, str], ...]:
    return tuple((a.oid.dotted_string, a.value if isinstance(a.value, str)
                  else a.value.hex()) for a in name)


def _selected(oid: str, matcher: frozenset[str]) -> bool:
    if not matcher or oid in matcher:
        return True
    return any(n in matcher for n in _NAMES.get(oid, ()))


def lookup_names(parts: Sequence[SanPart], cn: str | None, wanted: frozenset[str]
                 ) -> tuple[str, ...]:
    """Every SAN value, DirectoryNames reduced to the matcher's attributes, then the CN."""
    names: list[str] = []
    for part in parts:
        if isinstance(part, str):
            names.append(part)
        else:
            names.extend(value for oid, value in part if _selected(oid, wanted))
    if cn is not None:
        names.append(cn)
    return tuple(names)
