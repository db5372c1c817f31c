"""``ramparts start``: what is done once per start (checks, then migrations or DB-less mode's
private database), then the supervisor (``admin/supervisor.py``) until the node stops."""

from __future__ import annotations

import asyncio
import logging

from admin.supervisor import Supervisor
from gateway import registry
from gateway.db import migrate
from gateway.db.store import Store
from gateway.settings.load import redact_url
from gateway.settings.model import Settings
from gateway.snapcache import SnapshotCache, at_start
from gateway.tls import tickets
from gateway.workers.startup import StartError, node_keyring, preflight, prepare_dbless

log = logging.getLogger("ramparts")


async def prepare(settings: Settings, reg: registry.Registry) -> str | None:
    """Once per start: the checks, then migrations, or DB-less mode's private database
    (its directory is returned: the children open it). A database that is down is not fatal
    when the last-good snapshot cache can serve (the workers read it)."""
    preflight(settings)
    ring = node_keyring(settings)
    if settings.dbless:
        private = await prepare_dbless(settings, reg, ring)
        private.owned = False  # the supervisor removes it at exit, after its children
        await private.close()
        return private.directory
    store = Store(settings.database, reg, keyring=ring)
    try:
        before = await migrate.upgrade(store.engine)
        if before.pending:
            log.info("database migrated: %s", ", ".join(before.pending))
    except Exception as exc:
        cache = SnapshotCache(settings.snapshot_cache, lambda: ring) \
            if settings.snapshot_cache else None
        if at_start(cache, exc) is None:
            raise StartError(f"cannot prepare the database {redact_url(settings.database)}: "
                             f"{exc}") from exc
    finally:
        await store.close()
    return None


def start(conf: str | None, settings: Settings, reg: registry.Registry) -> int:
    """``ramparts start``: exit 0 after a clean stop, 1 when the node cannot start."""
    try:
        # this start's ticket secret, in memory only; or one an outer process manager handed
        # every node it starts (an inherited pipe, as the workers get it), so session tickets
        # resume across those nodes too
        secret = tickets.inherited_secret() or tickets.new_secret()
        dbless_dir = asyncio.run(prepare(settings, reg))
    except (StartError, tickets.TicketSecretError) as exc:
        log.error("%s", exc)
        return 1
    supervisor = Supervisor(conf, settings, dbless_dir, secret)
    try:
        supervisor.bind_all()
        code = supervisor.run()
    except StartError as exc:
        log.error("%s", exc)
        code = 1
    finally:
        supervisor.close()
    log.info("stopped")
    return code
