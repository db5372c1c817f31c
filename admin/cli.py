"""``ramparts``: start the node, run migrations, check settings, manage Admin API tokens,
print the version."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence

from admin import config_cmd, keyring_cmd, start
from gateway import keyring, registry, version
from gateway.db import admin_tokens, migrate
from gateway.db.store import Store
from gateway.settings.access import ROLES
from gateway.settings.load import SettingsError, load
from gateway.settings.model import Settings

log = logging.getLogger("ramparts")

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "notice": logging.INFO,
          "warn": logging.WARNING, "error": logging.ERROR, "crit": logging.CRITICAL}


def setup_logging(level: str, process: str = "supervisor") -> None:
    """Every process of a node logs to the same stream; each line names the process
    (``supervisor``, ``admin pid N``, ``worker K pid N``)."""
    logging.basicConfig(level=LEVELS.get(level, logging.INFO), stream=sys.stderr,
                        format=f"%(asctime)s [%(levelname)s] {process} %(name)s: %(message)s",
                        datefmt="%Y/%m/%d %H:%M:%S")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # we log what was migrated


def _settings(path: str | None) -> Settings:
    try:
        return load(path)
    except SettingsError as exc:
        print("invalid settings:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(1) from exc


def _store(settings: Settings, ring: keyring.Keyring | None = None) -> Store:
    try:
        reg = registry.build(settings.plugins, settings.plugin_path)
    except registry.UnknownPlugin as exc:
        print(f"invalid settings:\n  plugins: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    return Store(settings.database, reg, keyring=ring)


def _start(conf: str | None, settings: Settings) -> int:
    try:
        reg = registry.build(settings.plugins, settings.plugin_path)
    except registry.UnknownPlugin as exc:
        print(f"invalid settings:\n  plugins: {exc}", file=sys.stderr)
        return 1
    return start.start(conf, settings, reg)


async def _migrations(settings: Settings, action: str) -> int:
    store = _store(settings)
    try:
        if action == "up":
            before = await migrate.upgrade(store.engine)
            print(f"applied: {', '.join(before.pending)}" if before.pending
                  else "database already up to date")
        else:
            status = await migrate.status(store.engine)
            print(f"current: {status.current or '(empty database)'}\nhead:    {status.head}")
            print("pending: " + (", ".join(status.pending) if status.pending else "none"))
            return 0 if status.up_to_date else 3
    finally:
        await store.close()
    return 0


def _check(path: str | None) -> int:
    try:
        settings = load(path)
        registry.build(settings.plugins, settings.plugin_path)
    except SettingsError as exc:
        for problem in exc.problems:
            print(problem)
        return 1
    except registry.UnknownPlugin as exc:
        print(f"plugins: {exc}")
        return 1
    print(f"configuration {'at ' + path + ' ' if path else ''}is valid")
    return 0


def _add_admin_tokens(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tokens = sub.add_parser("admin-tokens", help="Admin API tokens (stored hashed)")
    actions = tokens.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a token and print it (once)")
    create.add_argument("name")
    create.add_argument("--role", required=True, choices=ROLES)
    actions.add_parser("list", help="list the tokens (names and roles, never the tokens)")
    revoke = actions.add_parser("revoke", help="revoke a token: it stops working at once")
    revoke.add_argument("name")
    for action in (create, actions.choices["list"], revoke):
        action.add_argument("-c", "--conf", help="settings file (YAML or JSON)")


async def _admin_tokens(settings: Settings, args: argparse.Namespace) -> int:
    """Tokens live in the database, so every node sees a change at once; the database is
    migrated first, so a token can be created before the first ``ramparts start``."""
    store = _store(settings)
    try:
        await migrate.upgrade(store.engine)
        if args.action == "create":
            token = await admin_tokens.create(store, args.name, args.role)
            print(token)
            print(f"admin token '{args.name}' ({args.role}) created: store it now, it cannot "
                  "be shown again. Send it as 'Kong-Admin-Token: <token>' or "
                  "'Authorization: Bearer <token>'.", file=sys.stderr)
        elif args.action == "revoke":
            await admin_tokens.revoke(store, args.name)
            print(f"admin token '{args.name}' revoked")
        else:
            for entry in await admin_tokens.list_all(store):
                created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.created_at))
                print(f"{entry.name}\t{entry.role}\t{created}")
    except admin_tokens.TokenError as exc:
        print(f"admin-tokens {args.action}: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ramparts", description="Kong-compatible TLS gateway")
    sub = p.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="run migrations, then serve (foreground)")
    start.add_argument("-c", "--conf", help="settings file (YAML or JSON)")
    start.add_argument("--workers", help="proxy worker processes: a number or 'auto' "
                       "(overrides the `workers` setting)")
    mig = sub.add_parser("migrations", help="database migrations")
    mig.add_argument("action", choices=("up", "status"))
    mig.add_argument("-c", "--conf", help="settings file (YAML or JSON)")
    check = sub.add_parser("check", help="validate a settings file, print every problem")
    check.add_argument("-c", "--conf", help="settings file (YAML or JSON)")
    sub.add_parser("version", help="print the version")
    _add_admin_tokens(sub)
    keyring_cmd.add_parser(sub)
    config_cmd.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "version":
        print(f"ramparts {version.__version__} (Kong Admin API {version.KONG_COMPAT_VERSION})")
        return 0
    if args.command == "check":
        return _check(args.conf)
    if args.command == "keyring" and args.action == "generate":
        return keyring_cmd.generate(args.id)
    if args.command == "config" and args.action == "init":
        return config_cmd.init(args.file)
    os.umask(0o077)  # whatever this process creates (database, keys, caches) is private
    if args.command == "start" and args.workers is not None:
        # as RAMPARTS_WORKERS: it wins over the file, and a SIGHUP re-read keeps it
        os.environ["RAMPARTS_WORKERS"] = args.workers
    settings = _settings(args.conf)
    setup_logging(settings.log_level)
    if args.command == "migrations":
        return asyncio.run(_migrations(settings, args.action))
    if args.command == "admin-tokens":
        return asyncio.run(_admin_tokens(settings, args))
    if args.command == "keyring":
        return asyncio.run(keyring_cmd.rotate_command(settings, _store, args.batch))
    if args.command == "config":
        return asyncio.run(config_cmd.run(settings, args, _store))
    return _start(args.conf, settings)


if __name__ == "__main__":
    sys.exit(main())
