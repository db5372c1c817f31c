"""The handlers bundled with this version, by plugin name. A configured plugin that is not
here fails closed (its routes answer 500): bundled plugins whose handlers are still to come
(mtls-auth, acl) are configured through the Admin API but not run yet."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from gateway.plugins.runtime import Handler

HANDLERS: Mapping[str, type[Handler]] = MappingProxyType({})
