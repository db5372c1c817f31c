"""From text to a map: YAML or JSON, Kong's env vault references, the 1.1/2.1 migration.

Pure: no I/O beyond reading ``os.environ`` for ``{vault://env/NAME}``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

import yaml

from gateway.errors import DeclarativeSyntaxError

FORMAT_VERSIONS = ("1.1", "2.1", "3.0")
CURRENT = "3.0"

# Kong's env vault: `{vault://env/my-secret}` reads MY_SECRET (upper case, `-` -> `_`)
VAULT_REF = re.compile(r"^\{vault://env/([A-Za-z0-9_.-]+)\}$")
# 1.1 and 2.1 had no `~` marker: a path with anything outside these characters was a regex
_PLAIN_PATH = re.compile(r"^[a-zA-Z0-9._~/%-]*$")


def load_text(text: str | bytes) -> dict[str, Any]:
    """YAML (JSON is YAML too, but json.loads is stricter and faster on big JSON files)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DeclarativeSyntaxError("failed parsing declarative configuration: "
                                         "not UTF-8 text") from exc
    value: Any
    try:
        value = json.loads(text) if text.lstrip().startswith("{") else _yaml(text)
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()
        raise DeclarativeSyntaxError("failed parsing declarative configuration: "
                                     + (first[0] if first else type(exc).__name__)) from exc
    if not isinstance(value, dict):
        raise DeclarativeSyntaxError("failed parsing declarative configuration: "
                                     "expected an object")
    return value


def _yaml(text: str) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # a safe loader


def vault_env_name(ref: str) -> str | None:
    match = VAULT_REF.match(ref)
    if match is None:
        return None
    return match.group(1).upper().replace("-", "_")


def resolve_reference(value: Any, env: Mapping[str, str] | None = None) -> tuple[Any, str | None]:
    """``(value, error)``: a ``{vault://env/NAME}`` string becomes the variable's value."""
    if not isinstance(value, str):
        return value, None
    name = vault_env_name(value)
    if name is None:
        return value, None
    found = (os.environ if env is None else env).get(name)
    if found is None:
        return value, (f"unable to resolve reference {value} "
                       f"(environment variable {name} is not set)")
    return found, None


def migrate_path(path: Any) -> Any:
    """Kong's route-path migration from 1.1/2.1: regex-looking paths get the ``~`` prefix."""
    if not isinstance(path, str) or _PLAIN_PATH.match(path):
        return path
    return "~" + path
