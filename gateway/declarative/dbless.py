"""DB-less mode (``database: off``): the configuration lives in a private SQLite database in a
temporary directory, filled from ``declarative_config`` at start and replaced as a whole by
``POST /config``. Snapshot building, reloading and the proxy are exactly database mode's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import tempfile
from typing import Any

from gateway.db import migrate
from gateway.db.store import Store
from gateway.declarative import dbio
from gateway.declarative.parse import Config, Parser
from gateway.declarative.source import load_text
from gateway.errors import RampartsError
from gateway.keyring import Keyring
from gateway.registry import Registry
from gateway.settings.model import Settings

EMPTY_HASH = "0" * 32


class Busy(RampartsError):
    status = 429

    def __init__(self) -> None:
        super().__init__("Currently loading previous configuration")

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "60"}


def database_url(directory: str) -> str:
    return f"sqlite:///{os.path.join(directory, 'config.db')}"


class DblessStore(Store):
    """A store on a private, throw-away SQLite file; knows the hash of what it holds.

    The supervisor makes the directory (and removes it at exit); the Admin API process opens
    the same ``directory`` to replace the configuration, and the workers read the file as any
    SQLite database (their reloaders see it change). The hash is kept next to the file, so a
    restarted Admin API process still reports it."""

    def __init__(self, registry: Registry, keyring: Keyring | None = None,
                 directory: str | None = None) -> None:
        self.owned = directory is None
        self.directory = tempfile.mkdtemp(prefix="ramparts-dbless-") if directory is None \
            else directory  # mode 0700
        super().__init__(database_url(self.directory), registry, keyring=keyring)
        self.loading = asyncio.Lock()

    @property
    def config_hash(self) -> str:
        try:
            with open(os.path.join(self.directory, "config.hash"), encoding="ascii") as f:
                return f.read().strip() or EMPTY_HASH
        except OSError:
            return EMPTY_HASH

    @config_hash.setter
    def config_hash(self, digest: str) -> None:
        path = os.path.join(self.directory, "config.hash")
        with open(path + ".new", "w", encoding="ascii") as f:
            f.write(digest)
        os.replace(path + ".new", path)

    async def close(self) -> None:
        await super().close()
        if self.owned:
            shutil.rmtree(self.directory, ignore_errors=True)


def config_hash(doc: dict[str, Any]) -> str:
    """Kong's ``configuration_hash``: 32 hex digits over the configuration's content."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.md5(canonical.encode(), usedforsecurity=False).hexdigest()


def parse_doc(store: Store, doc: dict[str, Any]) -> Config:
    return Parser(store).parse(doc)


async def load(store: DblessStore, doc: dict[str, Any], *, check_hash: bool = False
               ) -> Config | None:
    """Validate and swap in ``doc``; None when ``check_hash`` and nothing changed."""
    digest = config_hash(doc)
    if check_hash and digest == store.config_hash:
        return None
    if store.loading.locked():
        raise Busy()
    async with store.loading:
        # off the event loop: a large file takes seconds to validate, and the proxy runs here
        config = await asyncio.to_thread(parse_doc, store, doc)
        await dbio.replace(store, config)
        store.config_hash = digest
    return config


def initial_text(settings: Settings) -> str | None:
    if settings.declarative_config_string is not None:
        return settings.declarative_config_string
    if settings.declarative_config is not None:
        with open(settings.declarative_config, encoding="utf-8") as f:
            return f.read()
    return None


async def open_store(settings: Settings, registry: Registry, keyring: Keyring | None
                     ) -> DblessStore:
    """The private database, migrated and loaded with the start-up configuration (invalid:
    the error propagates and the node does not start)."""
    store = DblessStore(registry, keyring)
    try:
        await migrate.upgrade(store.engine)
        text = initial_text(settings)
        if text is not None:
            await load(store, load_text(text))
    except BaseException:
        await store.close()
        raise
    return store
