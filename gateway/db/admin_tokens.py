"""Admin API tokens: made here, stored hashed, looked up on every authenticated request.

A token is 256 random bits (URL-safe base64 with an ``rpat_`` prefix, so people and secret
scanners recognise one). Only its SHA-256 is stored: a copy of the database gives no usable
token. Tokens are not configuration: writing them never bumps the config version.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from gateway.db import tables
from gateway.db.store import Store
from gateway.settings.access import ROLES

PREFIX = "rpat_"
_NAME = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
_MAX_TOKEN = 128  # far above a real token's 48 characters; longer ones are not looked up


class TokenError(ValueError):
    """A token cannot be created or revoked as asked (the message says why)."""


@dataclass(frozen=True, slots=True)
class AdminToken:
    name: str
    role: str
    created_at: int


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_new(name: str, role: str) -> None:
    if not _NAME.match(name):
        raise TokenError(f"invalid token name '{name}': use 1 to 128 letters, digits, "
                         "'.', '_', '~' or '-'")
    if role not in ROLES:
        raise TokenError(f"invalid role '{role}': expected one of: {', '.join(ROLES)}")


async def create(store: Store, name: str, role: str) -> str:
    """Store a new token and return it: the only time it exists in clear."""
    check_new(name, role)
    token = new_token()
    t = tables.admin_tokens
    try:
        async with store.engine.begin() as conn:
            await conn.execute(sa.insert(t).values(name=name, role=role,
                                                   token_hash=token_hash(token),
                                                   created_at=int(time.time())))
    except IntegrityError as exc:
        raise TokenError(f"an admin token named '{name}' already exists; revoke it first"
                         ) from exc
    return token


async def revoke(store: Store, name: str) -> None:
    t = tables.admin_tokens
    async with store.engine.begin() as conn:
        result = await conn.execute(sa.delete(t).where(t.c.name == name))
    if result.rowcount == 0:
        raise TokenError(f"no admin token named '{name}'")


async def list_all(store: Store) -> list[AdminToken]:
    t = tables.admin_tokens
    async with store.read() as conn:
        rows = (await conn.execute(sa.select(t.c.name, t.c.role, t.c.created_at)
                                   .order_by(t.c.name))).all()
    return [AdminToken(row.name, row.role, int(row.created_at)) for row in rows]


async def find(store: Store, token: str) -> AdminToken | None:
    """The token's record, or None for an unknown, revoked or malformed token."""
    if not token.startswith(PREFIX) or len(token) > _MAX_TOKEN:
        return None
    digest = token_hash(token)
    t = tables.admin_tokens
    async with store.read() as conn:
        row = (await conn.execute(sa.select(t).where(t.c.token_hash == digest))).first()
    # the index lookup already matched; the constant-time compare keeps the check itself
    # free of timing differences should the lookup ever become a scan
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return AdminToken(row.name, row.role, int(row.created_at))
