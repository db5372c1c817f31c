"""Load settings: defaults < file (YAML or JSON) < ``RAMPARTS_<KEY>`` environment variables.

Every problem is reported with the key it concerns (``tls.min_version: expected one of: ...``),
all at once, so ``ramparts check`` can print the whole list.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import yaml

from gateway.errors import SchemaViolation, flatten
from gateway.schema.build import build
from gateway.schema.compile import FieldSpec, RecordSchema, compile_record
from gateway.schema.validate import validate
from gateway.settings.model import Settings
from gateway.text import is_digits

SCHEMA: RecordSchema = compile_record(Settings)
ENV_PREFIX = "RAMPARTS_"
_TRUE = {"on", "true", "yes", "1"}
_FALSE = {"off", "false", "no", "0"}


class SettingsError(Exception):
    """Invalid settings; ``problems`` holds one ``"key: message"`` line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def load(path: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    raw: dict[str, Any] = {}
    problems: list[str] = []
    if path is not None:
        raw = _read_file(path, problems)
    environ = os.environ if env is None else env
    for spec in SCHEMA.fields:
        value = environ.get(ENV_PREFIX + spec.name.upper())
        if value is not None:
            try:
                raw[spec.name] = _from_env(spec, value)
            except ValueError as exc:
                problems.append(f"{spec.name}: {exc} (from {ENV_PREFIX}{spec.name.upper()})")
    raw = {k: _coerce(SCHEMA.by_name[k], v) if k in SCHEMA.by_name else v
           for k, v in raw.items()}
    try:
        values = validate(SCHEMA, raw)
    except SchemaViolation as exc:
        problems.extend(flatten(exc.fields))
    if problems:
        raise SettingsError(problems)
    settings: Settings = build(SCHEMA, values)
    for name in ("admin_listen", "proxy_listen", "stream_listen"):
        entries = [e.strip() for e in getattr(settings, name)]
        if "off" in entries and len(entries) > 1:  # each entry alone is fine; together not
            problems.append(f"{name}: 'off' cannot be combined with other addresses")
    if problems:
        raise SettingsError(problems)
    return settings


def _read_file(path: str, problems: list[str]) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        problems.append(f"-c {path}: cannot read the settings file: {exc.strerror or exc}")
        return {}
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        problems.append(f"-c {path}: not valid {'JSON' if path.endswith('.json') else 'YAML'}:"
                        f" {exc}")
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(f"-c {path}: expected a mapping of settings at the top level")
        return {}
    # KrakenD files carry these; they mean nothing to us and are not errors.
    return {k: v for k, v in data.items()
            if k not in ("version", "$schema") and not str(k).startswith("@")}


def _from_env(spec: FieldSpec, value: str) -> Any:
    """Environment values are strings: read JSON for structured fields when it looks like it."""
    text = value.strip()
    if spec.kind in ("record", "map"):
        if not text or text in ("null", "off"):
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"expected a JSON object: {exc}") from exc
    if spec.kind in ("array", "set") and text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            if not text.startswith('["'):
                return value  # `[::1]:8001`: an IPv6 listener, not JSON
            raise ValueError("expected a JSON array") from None
    return value


def _coerce(spec: FieldSpec, value: Any) -> Any:
    """Kong-style leniency shared by file and environment values.

    Lists may be comma-separated strings; YAML turns a bare ``off`` into ``False``; numbers and
    booleans may arrive as text.
    """
    if value is None:
        return None
    kind = spec.kind
    if kind in ("array", "set"):
        if isinstance(value, bool):
            value = "on" if value else "off"
        if isinstance(value, (str, int)):
            value = [v.strip() for v in str(value).split(",") if v.strip()]
        if isinstance(value, list) and spec.elements is not None:
            return [_coerce(spec.elements, v) for v in value]
        return value
    if kind == "record" and isinstance(value, dict) and spec.record is not None:
        fields = spec.record.by_name
        return {k: _coerce(fields[k], v) if k in fields else v for k, v in value.items()
                if not str(k).startswith("@")}
    if kind == "string" and isinstance(value, bool):
        return "on" if value else "off"
    if kind == "string" and isinstance(value, (int, float)):
        return str(value)  # `workers: 2`, `drain_timeout: 30`: nginx's values are text
    if isinstance(value, str):
        text = value.strip()
        if kind == "boolean" and text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        if kind == "integer" and is_digits(text.lstrip("-")):
            return int(text)
        if kind == "number":
            try:
                return float(text)
            except ValueError:
                return value
    return value


def redacted(settings: Settings) -> dict[str, Any]:
    """The settings as JSON for ``GET /``: key material and database credentials removed."""
    from gateway.schema.fields import Secret  # local: only this view needs it

    def view(schema: RecordSchema, obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for spec in schema.fields:
            value = getattr(obj, spec.name)
            if spec.has(Secret) and value:
                out[spec.name] = redact_url(value) if spec.name in ("database", "database_ro") \
                    else "******"
            elif spec.kind == "record" and spec.record is not None and value is not None:
                out[spec.name] = view(spec.record, value)
            elif spec.kind == "map" and value is not None:
                out[spec.name] = dict(value)  # a read-only mapping is not JSON
            elif isinstance(value, tuple):
                out[spec.name] = [view(spec.elements.record, v)
                                  if spec.elements is not None and spec.elements.record
                                  else ("******" if spec.elements is not None
                                        and spec.elements.has(Secret) else v)
                                  for v in value]
            else:
                out[spec.name] = value
        return out

    return view(SCHEMA, settings)


def redact_url(url: str) -> str:
    """A database URL with its password hidden."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}{sep}{user}{':******' if ':' in creds else ''}@{host}"
    return url
