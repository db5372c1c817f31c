"""An in-process Admin API with chosen settings and listener, on the real test database."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import httpx

from admin.app import create_app
from admin.meta import NodeInfo
from gateway.db.store import Store
from gateway.settings import listen
from gateway.settings.load import load


@contextlib.asynccontextmanager
async def admin_client(store: Store, env: dict[str, str] | None = None,
                       listener: str | None = None, base_url: str = "http://localhost:8001",
                       client: tuple[str, int] = ("127.0.0.1", 50000)
                       ) -> AsyncIterator[httpx.AsyncClient]:
    """``env`` holds ``RAMPARTS_*`` settings; ``listener`` (Kong syntax) is the listener the
    requests arrive on, default the first ``admin_listen`` entry."""
    node = NodeInfo(settings=load(env=env or {}), node_id=str(uuid.uuid4()))
    chosen = listen.parse_entry(listener) if listener else None
    app = create_app(store, node, chosen)
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as c:
        yield c
