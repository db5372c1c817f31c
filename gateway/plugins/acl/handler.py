"""``acl`` access phase (kong.md §7.1): allow or deny by the consumer's ``acls`` groups, or
by the authenticated groups an auth plugin set (mtls-auth with ``skip_consumer_lookup``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway import version
from gateway.plugins.directory import EMPTY_DIRECTORY
from gateway.plugins.pdk import Kong
from gateway.plugins.runtime import Handler

BLOCKED = "You cannot consume this service"
CONSUMER_GROUPS = "X-Consumer-Groups"
AUTHENTICATED_GROUPS = "X-Authenticated-Groups"


class AclHandler(Handler):
    name = "acl"
    PRIORITY = 950
    VERSION = version.__version__
    CONNECTION_SCOPED = True  # reads the consumer and groups, never the request

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        deny = config.get("deny")
        self.deny_mode = bool(deny)  # a present but empty deny list is allow mode (Kong)
        self.listed = frozenset(deny if deny else config.get("allow") or ())
        self.hide = bool(config.get("hide_groups_header"))
        self.prefer_authenticated = bool(config.get("always_use_authenticated_groups"))

    def access(self, kong: Kong) -> None:
        client = kong.client
        for header in (CONSUMER_GROUPS, AUTHENTICATED_GROUPS):
            kong.service_request.clear_header(header)  # a client's copy never goes upstream
        authenticated = kong.ctx.get("authenticated_groups") or None
        if client.consumer is None:
            if not authenticated:
                raise self._refuse(kong)
            self._check(kong, authenticated, AUTHENTICATED_GROUPS)
            return
        if authenticated and (client.credential is None or self.prefer_authenticated):
            self._check(kong, authenticated, AUTHENTICATED_GROUPS)
            return
        groups = (kong.db or EMPTY_DIRECTORY).acls.get(client.consumer.id)
        if not groups and not self.deny_mode:
            raise self._refuse(kong)
        self._check(kong, groups or (), CONSUMER_GROUPS)

    def _refuse(self, kong: Kong) -> Exception:
        if kong.client.credential is not None:
            return kong.response.error(403, BLOCKED)
        return kong.response.error(401, "Unauthorized")

    def _check(self, kong: Kong, groups: Any, header: str) -> None:
        matched = any(group in self.listed for group in groups)
        if matched is self.deny_mode:
            raise kong.response.error(403, BLOCKED)
        if not self.hide:
            kong.service_request.set_header(header, ", ".join(groups))
