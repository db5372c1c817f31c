"""The handlers bundled with this version, by plugin name. A configured plugin that is not
here fails closed (its routes answer 500)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from gateway.plugins.acl.handler import AclHandler
from gateway.plugins.mtls_auth.handler import MtlsAuthHandler
from gateway.plugins.runtime import Handler

HANDLERS: Mapping[str, type[Handler]] = MappingProxyType({
    MtlsAuthHandler.name: MtlsAuthHandler,
    AclHandler.name: AclHandler,
})
