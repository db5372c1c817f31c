"""gateway/keyring.py: the sealed format, what binds a value to its place, configuration."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from gateway import keyring
from gateway.errors import SecretUnavailable
from gateway.keyring import aad, open_value, parse

K1 = base64.b64encode(b"1" * 32).decode()
K2 = base64.b64encode(b"2" * 32).decode()
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
HERE = aad("certificates", "key", "0d5e5b3c-7b0b-4a4e-9d0e-6d3c5b4b1a11")


def test_sealed_value_carries_its_key_id_and_no_plaintext() -> None:
    ring = parse(f"k1:{K1}", "test")
    sealed = ring.seal(PEM, HERE)
    assert sealed.startswith("$ramparts$v1$k1$")
    assert "PRIVATE KEY" not in sealed and "MIIEvQ" not in sealed
    assert ring.seal(PEM, HERE) != sealed  # a fresh nonce every time
    assert ring.open(sealed, HERE, "certificate x key") == PEM


def test_rotation_keyring_reads_old_key_and_writes_the_first() -> None:
    old = parse(f"k1:{K1}", "test").seal(PEM, HERE)
    both = parse(f"k2:{K2},k1:{K1}", "test")
    assert both.current_id == "k2"
    assert both.open(old, HERE, "x") == PEM
    assert keyring.key_id(both.seal(PEM, HERE)) == "k2"


@pytest.mark.parametrize("elsewhere", [
    aad("certificates", "key", "ffffffff-7b0b-4a4e-9d0e-6d3c5b4b1a11"),  # another row
    aad("certificates", "key_alt", "0d5e5b3c-7b0b-4a4e-9d0e-6d3c5b4b1a11"),  # another column
    aad("plugins", "key", "0d5e5b3c-7b0b-4a4e-9d0e-6d3c5b4b1a11"),  # another table
])
def test_ciphertext_moved_to_another_place_is_refused(elsewhere: bytes) -> None:
    ring = parse(f"k1:{K1}", "test")
    with pytest.raises(SecretUnavailable, match="authentication failed"):
        ring.open(ring.seal(PEM, HERE), elsewhere, "x")


def test_tampered_ciphertext_is_refused_by_the_gcm_tag() -> None:
    ring = parse(f"k1:{K1}", "test")
    sealed = ring.seal(PEM, HERE)
    prefix, blob = sealed.rsplit("$", 1)
    raw = bytearray(base64.b64decode(blob))
    raw[20] ^= 1  # one bit of the ciphertext
    tampered = f"{prefix}${base64.b64encode(bytes(raw)).decode()}"
    with pytest.raises(SecretUnavailable, match="key id 'k1': authentication failed"):
        ring.open(tampered, HERE, "certificate x key")
    with pytest.raises(SecretUnavailable, match="malformed"):
        ring.open(prefix + "$AAAA", HERE, "x")


def test_unknown_key_id_names_it_and_the_value() -> None:
    sealed = parse(f"k1:{K1}", "test").seal(PEM, HERE)
    with pytest.raises(SecretUnavailable) as err:
        parse(f"k2:{K2}", "test").open(sealed, HERE, "certificate abc key")
    assert err.value.key_id == "k1"
    assert "certificate abc key" in str(err.value) and "'k1'" in str(err.value)
    with pytest.raises(SecretUnavailable, match="no keyring is configured"):
        open_value(None, sealed, HERE, "certificate abc key")


def test_plaintext_written_before_the_keyring_reads_as_is() -> None:
    assert open_value(parse(f"k1:{K1}", "test"), PEM, HERE, "x") == PEM
    assert open_value(None, PEM, HERE, "x") == PEM


@pytest.mark.parametrize(("text", "message"), [
    ("", "no key found"),
    ("k1", "entry 1: expected 'id:base64key'"),
    ("k$1:" + K1, "entry 1: expected"),
    ("k1:not base64!", "key 'k1': not valid base64"),
    ("k1:" + base64.b64encode(b"short").decode(), "must be 32 bytes, got 5"),
    (f"k1:{K1}\nk1:{K2}", "key id 'k1' appears twice"),
])
def test_bad_keyrings_are_refused_without_echoing_keys(text: str, message: str) -> None:
    with pytest.raises(keyring.KeyringError, match=message) as err:
        parse(text, "RAMPARTS_KEYRING")
    assert K1 not in str(err.value) and K2 not in str(err.value)


def test_key_file_with_comments_and_the_two_sources(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# current first\nk2:{K2}\nk1:{K1}  # old\n")
    os.chmod(path, 0o600)
    from_file = keyring.configured(str(path), env={})
    from_env = keyring.configured(None, env={keyring.ENV: f"k1:{K1}"})
    assert from_file is not None and from_file.ids == ("k2", "k1")
    assert from_env is not None and from_env.ids == ("k1",)
    assert keyring.configured(None, env={}) is None
    with pytest.raises(keyring.KeyringError, match="use one of them"):
        keyring.configured(str(path), env={keyring.ENV: f"k1:{K1}"})


def test_missing_key_file_is_an_error_not_plaintext(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    with pytest.raises(keyring.KeyringError, match=r"cannot read file .*No such file"):
        keyring.configured(missing, env={})
    assert keyring.check_file(missing) == \
        f"cannot read file '{missing}': No such file or directory"


def test_generate_makes_a_usable_entry() -> None:
    entry = keyring.generate("2026-q4")
    ring = parse(entry, "generated")
    assert ring.current_id == "2026-q4"
    assert ring.open(ring.seal("x", HERE), HERE, "x") == "x"
    assert keyring.generate() != keyring.generate()
    with pytest.raises(keyring.KeyringError):
        keyring.generate("bad id")


def test_a_changed_key_file_is_noticed_and_a_broken_one_ignored(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"k1:{K1}\n")
    watch = keyring.KeyFileWatch(str(path))
    assert watch.poll() is None  # unchanged
    path.write_text(f"k2:{K2}\nk1:{K1}\n")
    changed = watch.poll()
    assert changed is not None and changed.ids == ("k2", "k1")
    assert watch.poll() is None
    path.write_text("k3:short\n")
    assert watch.poll() is None  # invalid: the node keeps its keys (and logs why)
