"""``ramparts config init|parse|db_import|db_export|diff``: Kong's ``kong config`` commands,
plus ``diff`` (what an import would create, change and delete; exit 2 when anything)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from gateway import keyring
from gateway.db import migrate
from gateway.db.store import Store
from gateway.declarative import dbio, diff, render
from gateway.declarative.parse import Config, parse_text
from gateway.errors import DeclarativeSyntaxError, InvalidDeclarativeConfig, RampartsError
from gateway.settings.model import Settings

MakeStore = Callable[[Settings, "keyring.Keyring | None"], Store]

EXAMPLE = """\
# a declarative configuration in Kong's format: `ramparts config db_import kong.yml`,
# or start with `database: off` and `declarative_config: kong.yml`
_format_version: "3.0"
_transform: true

services:
- name: example-service
  url: http://example.com
  routes:
  - name: example-route
    paths:
    - /example

# certificates:
# - cert: |
#     -----BEGIN CERTIFICATE-----
#     ...
#   key: "{vault://env/example-key}"    # read from the EXAMPLE_KEY environment variable
#   snis:
#   - name: example.com

# consumers:
# - username: example-user
#   acls:
#   - group: admins

# plugins:
# - name: acl
#   route: example-route
#   config:
#     allow: [admins]
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="declarative configuration (kong.yml)")
    actions = p.add_subparsers(dest="action", required=True)
    init = actions.add_parser("init", help="write an example kong.yml")
    init.add_argument("file", nargs="?", default="kong.yml")
    parse = actions.add_parser("parse", help="parse and validate a file")
    imp = actions.add_parser("db_import", help="upsert a file's entities in one transaction")
    exp = actions.add_parser("db_export", help="write the database in Kong's format")
    exp.add_argument("file", nargs="?", default="kong.yml", help="'-' for standard output")
    exp.add_argument("--force", action="store_true", help="overwrite an existing file")
    exp.add_argument("--with-keys", action="store_true",
                     help="include private keys (decrypted); left out by default")
    dif = actions.add_parser("diff", help="what importing a file would create, change, delete")
    for action in (parse, imp, dif):
        action.add_argument("file")
    for action in (init, parse, imp, exp, dif):
        action.add_argument("-c", "--conf", help="settings file (YAML or JSON)")


def init(path: str) -> int:
    target = Path(path)
    if target.exists():
        print(f"Error: {path} already exists in the current directory; will not overwrite it.",
              file=sys.stderr)
        return 1
    target.write_text(EXAMPLE)
    print(f"Successfully written {path}")
    return 0


async def run(settings: Settings, args: argparse.Namespace, make_store: MakeStore) -> int:
    try:
        ring = keyring.configured(settings.keyring_file)
    except keyring.KeyringError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    if settings.dbless:
        if args.action != "parse":
            print(f"Error: 'ramparts config {args.action}' only works with a database.",
                  file=sys.stderr)
            return 1
        settings = dataclasses.replace(settings, database="sqlite://")  # parse: no I/O
    store = make_store(settings, ring)
    try:
        return await _run(store, args)
    except InvalidDeclarativeConfig as exc:
        print(f"Error: {exc.message}\n{json.dumps(exc.fields, indent=2)}", file=sys.stderr)
        return 1
    except (DeclarativeSyntaxError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except RampartsError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()


async def _run(store: Store, args: argparse.Namespace) -> int:
    if args.action == "parse":
        _parse(store, args.file)
        print("parse successful")
        return 0
    await migrate.upgrade(store.engine)
    if args.action == "db_import":
        config = _parse(store, args.file)
        print("parse successful, beginning import")
        await dbio.db_import(store, config, _progress if sys.stderr.isatty() else None)
        print("import successful")
        return 0
    if args.action == "db_export":
        return await _export(store, args)
    config = _parse(store, args.file)
    rows = await dbio.read_rows(store)
    plugins = {n: s.config for n, s in store.registry.available.items()}
    result = diff.compare(store.registry.entities, plugins, config, rows)
    sys.stdout.write(diff.render(result))
    return 0 if result.empty else 2


def _parse(store: Store, path: str) -> Config:
    return parse_text(store, Path(path).read_bytes())


async def _export(store: Store, args: argparse.Namespace) -> int:
    if args.file != "-" and os.path.exists(args.file) and not args.force:
        print(f"Error: {args.file} already exists; use --force to overwrite it",
              file=sys.stderr)
        return 1
    rows = await dbio.read_rows(store, secrets=args.with_keys)
    text = render.dump(dbio.export_document(store, rows))
    if args.file == "-":
        sys.stdout.write(text)
    else:
        Path(args.file).write_text(text)
        print(f"exported to {args.file}" + ("" if args.with_keys else
                                            " (private keys left out: --with-keys)"))
    return 0


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    end = "\n" if done == total else ""
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end=end,
          file=sys.stderr, flush=True)
