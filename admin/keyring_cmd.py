"""``ramparts keyring generate|rotate``: make a key; re-seal every secret under the current
key (see ``gateway.db.rotate``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from gateway import keyring
from gateway.db.rotate import rotate
from gateway.db.store import Store
from gateway.settings.model import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("keyring", help="keys that encrypt private keys at rest")
    actions = p.add_subparsers(dest="action", required=True)
    gen = actions.add_parser("generate", help="print a new key entry (id:base64key)")
    gen.add_argument("--id", help="the key id (default: k<date>-<random>)")
    rot = actions.add_parser("rotate", help="re-encrypt every secret under the current key")
    rot.add_argument("-c", "--conf", help="settings file (YAML or JSON)")
    rot.add_argument("--batch", type=int, default=100, help="rows per transaction")


def generate(key_id: str | None) -> int:
    try:
        print(keyring.generate(key_id))
    except keyring.KeyringError as exc:
        print(f"ramparts keyring generate: {exc}", file=sys.stderr)
        return 1
    return 0


async def rotate_command(settings: Settings, make_store: Callable[[Settings, keyring.Keyring],
                                                                   Store], batch: int) -> int:
    try:
        ring = keyring.configured(settings.keyring_file)
    except keyring.KeyringError as exc:
        print(f"ramparts keyring rotate: {exc}", file=sys.stderr)
        return 1
    if ring is None:
        print(f"ramparts keyring rotate: no keyring is configured (set {keyring.ENV} or "
              "keyring_file)", file=sys.stderr)
        return 1
    store = make_store(settings, ring)
    try:
        report = await rotate(store, batch=max(1, batch))
    finally:
        await store.close()
    print(f"re-encrypted {report.resealed} values in {report.rows} rows under key "
          f"'{report.current}'")
    for failure in report.failures:
        print(f"  {failure}", file=sys.stderr)
    return 1 if report.failures else 0
