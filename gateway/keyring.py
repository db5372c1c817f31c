"""Secrets encrypted at rest: AES-256-GCM under a keyring of named keys.

A sealed value is text, so it lives in the same column as the plaintext it replaces (no
migration): ``$ramparts$v1$<key id>$<base64(nonce || ciphertext || tag)>``. The additional
authenticated data names the value's place (table, column, row id): a value copied into
another row or column fails its tag check instead of decrypting there.

The keyring comes from ``RAMPARTS_KEYRING`` or the ``keyring_file`` setting, both
``id:base64key`` entries (comma- or newline-separated). The first key seals new values; every
key opens values. No message in this module ever contains key bytes or plaintext.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import SecretUnavailable

log = logging.getLogger("ramparts.keyring")

ENV = "RAMPARTS_KEYRING"
PREFIX = "$ramparts$v1$"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12
_KID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class KeyringError(ValueError):
    """The keyring configuration is unusable (the message names the entry, never the key)."""


@dataclass(frozen=True, slots=True)
class Keyring:
    """Named AES-256 keys; ``keys[0]`` is the current one (used to seal)."""

    keys: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyringError("the keyring has no key")

    @property
    def current_id(self) -> str:
        return self.keys[0][0]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(kid for kid, _ in self.keys)

    def seal(self, plaintext: str, aad: bytes) -> str:
        kid, key = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        blob = nonce + AESGCM(key).encrypt(nonce, plaintext.encode(), aad)
        return f"{PREFIX}{kid}${base64.b64encode(blob).decode()}"

    def open(self, stored: str, aad: bytes, what: str) -> str:
        """The plaintext of a sealed value; ``what`` names it in errors ("certificate <id>
        key"). Raises ``SecretUnavailable``: unknown key id, or a failed tag check."""
        kid, blob = split(stored, what)
        key = dict(self.keys).get(kid)
        if key is None:
            raise SecretUnavailable(kid, f"cannot decrypt {what}: key id '{kid}' is not in "
                                         f"this node's keyring ({', '.join(self.ids)})")
        try:
            return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad).decode()
        except (InvalidTag, ValueError) as exc:
            raise SecretUnavailable(kid, f"cannot decrypt {what} with key id '{kid}': "
                                         "authentication failed (tampered, moved from "
                                         "another row, or a different key with that id)"
                                    ) from exc


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def key_id(stored: str) -> str:
    return stored[len(PREFIX):].split("$", 1)[0]


def split(stored: str, what: str) -> tuple[str, bytes]:
    kid, sep, text = stored[len(PREFIX):].partition("$")
    try:
        if not sep:
            raise ValueError("no payload")
        blob = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SecretUnavailable(kid, f"cannot decrypt {what}: malformed sealed value") from exc
    if len(blob) < NONCE_BYTES + 16:
        raise SecretUnavailable(kid, f"cannot decrypt {what}: malformed sealed value")
    return kid, blob


def open_value(keyring: Keyring | None, stored: str, aad: bytes, what: str) -> str:
    """Sealed values are opened; anything else is plaintext written before a keyring was
    configured (``ramparts keyring rotate`` seals it)."""
    if not is_sealed(stored):
        return stored
    if keyring is None:
        raise SecretUnavailable(key_id(stored), f"cannot decrypt {what}: it is encrypted with "
                                f"key id '{key_id(stored)}' and no keyring is configured "
                                f"(set {ENV} or keyring_file)")
    return keyring.open(stored, aad, what)


def aad(table: str, column: str, row_id: str) -> bytes:
    return f"ramparts\0{table}\0{column}\0{row_id.lower()}".encode()


# ---------------------------------------------------------------------- configuration
def parse(text: str, source: str) -> Keyring:
    """``id:base64key`` entries separated by commas or newlines; ``#`` starts a comment."""
    entries = [part.strip() for line in text.splitlines()
               for part in line.split("#", 1)[0].split(",")]
    keys: list[tuple[str, bytes]] = []
    for n, entry in enumerate((e for e in entries if e), start=1):
        kid, sep, encoded = entry.partition(":")
        kid = kid.strip()
        if not sep or not _KID.fullmatch(kid):
            raise KeyringError(f"{source}: entry {n}: expected 'id:base64key' with an id of "
                               "letters, digits, '.', '_' or '-'")
        try:
            raw = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise KeyringError(f"{source}: key '{kid}': not valid base64") from None
        if len(raw) != KEY_BYTES:
            raise KeyringError(f"{source}: key '{kid}': must be {KEY_BYTES} bytes, got "
                               f"{len(raw)} (`ramparts keyring generate` makes one)")
        if any(kid == other for other, _ in keys):
            raise KeyringError(f"{source}: key id '{kid}' appears twice")
        keys.append((kid, raw))
    if not keys:
        raise KeyringError(f"{source}: no key found")
    return Keyring(tuple(keys))


def read_file(path: str) -> Keyring:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
            mode = os.fstat(fh.fileno()).st_mode
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise KeyringError(f"keyring_file: cannot read file '{path}': {reason}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("keyring_file '%s' is readable by other users (mode %o); chmod 600 it",
                    path, stat.S_IMODE(mode))
    return parse(text, f"keyring_file: file '{path}'")


def check_file(path: str) -> str | None:
    """The settings check of ``keyring_file``: a missing or bad file stops the start."""
    try:
        read_file(path)
    except KeyringError as exc:
        return str(exc).removeprefix("keyring_file: ")
    return None


def configured(keyring_file: str | None, env: Mapping[str, str] | None = None
               ) -> Keyring | None:
    """The node's keyring, or None (plaintext, the default). Both sources at once is an
    error: which one is current would be a guess."""
    environ = os.environ if env is None else env
    from_env = environ.get(ENV, "").strip()
    if from_env and keyring_file:
        raise KeyringError(f"both {ENV} and keyring_file are set; use one of them")
    if keyring_file:
        return read_file(keyring_file)
    if from_env:
        return parse(from_env, ENV)
    return None


class KeyFileWatch:
    """Notices changes of ``keyring_file`` so a key added for a rotation reaches a running
    node without a restart. A file that becomes unreadable or invalid changes nothing: the
    node keeps the keys it has and says why."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp = self._read_stamp()

    def _read_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def poll(self) -> Keyring | None:
        """The new keyring when the file changed and reads well; None otherwise."""
        stamp = self._read_stamp()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            return read_file(self.path)
        except KeyringError as exc:
            log.error("%s; keeping the keys already loaded", exc)
            return None


def generate(kid: str | None = None) -> str:
    """A new ``id:base64key`` entry (32 random bytes)."""
    name = kid or time.strftime("k%Y%m%d-") + secrets.token_hex(3)
    if not _KID.fullmatch(name):
        raise KeyringError("a key id is 1-64 letters, digits, '.', '_' or '-'")
    return f"{name}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"
