"""Typed errors raised by the core and mapped to HTTP in exactly one place (admin/errors.py).

The codes, names and message texts are Kong's (``kong/db/errors.lua``) so that scripts that
parse Kong's error bodies keep working. Each error renders itself as Kong's ``err_t`` body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FieldErrors = dict[str, Any]
"""Nested error tree: field -> message | list (array elements) | FieldErrors (records)."""


def lua_repr(value: Any) -> str:
    """Render a value the way Kong pretty-prints Lua tables in error messages.

    ``{"name": "dup"}`` -> ``{name="dup"}``; keys sorted; ``None`` -> ``null``.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, Mapping):
        items = ",".join(f"{k}={lua_repr(v)}" for k, v in sorted(value.items()))
        return "{" + items + "}"
    if isinstance(value, (list, tuple)):
        return "{" + ",".join(lua_repr(v) for v in value) + "}"
    return lua_repr(str(value))


def flatten(errors: FieldErrors, prefix: str = "") -> list[str]:
    """Kong's message parts: entity errors first, then fields in sorted order."""
    parts: list[str] = []
    entity = errors.get("@entity")
    if entity:
        parts.extend(str(e) for e in entity)
    for key in sorted(k for k in errors if k != "@entity"):
        value = errors[key]
        name = f"{prefix}{key}"
        if isinstance(value, str):
            parts.append(f"{name}: {value}")
        elif isinstance(value, list):
            for i, item in enumerate(value, start=1):
                if item is None:
                    continue
                if isinstance(item, dict):
                    parts.extend(flatten(item, f"{name}.{i}."))
                else:
                    parts.append(f"{name}.{i}: {item}")
        elif isinstance(value, dict):
            sub = dict(value)
            nested_entity = sub.pop("@entity", None)
            if nested_entity:
                parts.extend(f"{name}: {e}" for e in nested_entity)
            parts.extend(flatten(sub, f"{name}."))
    return parts


class RampartsError(Exception):
    """Base of every error that has a defined HTTP meaning."""

    status = 500

    def body(self) -> dict[str, Any]:
        return {"message": str(self)}

    def headers(self) -> dict[str, str]:
        """Response headers the status needs (``WWW-Authenticate`` for a 401)."""
        return {}


class DbError(RampartsError):
    """A Kong ``err_t``: ``{code, name, message[, fields]}``."""

    code = 0
    name = ""
    status = 400

    def __init__(self, message: str, fields: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "name": self.name, "message": self.message}
        if self.fields is not None:
            out["fields"] = self.fields
        return out


class InvalidPrimaryKey(DbError):
    code, name = 1, "invalid primary key"

    def __init__(self, pk: Mapping[str, Any]) -> None:
        super().__init__(f"invalid primary key: '{lua_repr(pk)}'", dict(pk))


class SchemaViolation(DbError):
    code, name = 2, "schema violation"

    def __init__(self, fields: FieldErrors) -> None:
        parts = flatten(fields)
        if len(parts) == 1:
            message = f"schema violation ({parts[0]})"
        else:
            message = f"{len(parts)} schema violations ({'; '.join(parts)})"
        super().__init__(message, fields)


class PrimaryKeyViolation(DbError):
    code, name = 3, "primary key violation"

    def __init__(self, pk: Mapping[str, Any]) -> None:
        super().__init__(f"primary key violation on key '{lua_repr(pk)}'", dict(pk))


class ForeignKeyViolation(DbError):
    code, name = 4, "foreign key violation"

    @classmethod
    def missing_parent(cls, field: str, parent: str, key: Mapping[str, Any]
                       ) -> ForeignKeyViolation:
        msg = (f"the foreign key '{lua_repr(key)}' does not reference an existing "
               f"'{parent}' entity.")
        return cls(msg, {field: dict(key)})  # Kong: the missing key, not a sentence

    @classmethod
    def referenced_by(cls, parent: str, child: str) -> ForeignKeyViolation:
        return cls(f"an existing '{child}' entity references this '{parent}' entity",
                   {"@referenced_by": child})


class UniqueViolation(DbError):
    code, name = 5, "unique constraint violation"
    status = 409

    def __init__(self, key: Mapping[str, Any]) -> None:
        super().__init__(f"UNIQUE violation detected on '{lua_repr(key)}'", dict(key))


class NotFound(DbError):
    code, name = 6, "not found"
    status = 404

    def __init__(self, key: Mapping[str, Any], by_primary_key: bool = True) -> None:
        if by_primary_key:
            msg = f"could not find the entity with primary key '{lua_repr(key)}'"
        else:
            msg = f"could not find the entity with '{lua_repr(key)}'"
        super().__init__(msg, dict(key))


class InvalidOffset(DbError):
    code, name = 7, "invalid offset"

    def __init__(self, offset: str, reason: str = "bad base64 encoding") -> None:
        super().__init__(f"'{offset}' is not a valid offset: {reason}")


class InvalidSize(DbError):
    code, name = 9, "invalid size"


class InvalidUnique(DbError):
    """A non-UUID URL key that the endpoint-key field would reject (code 10)."""

    code = 10

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.name = f"invalid unique {field}"


class InvalidOptions(DbError):
    code, name = 11, "invalid options"

    def __init__(self, options: FieldErrors) -> None:
        parts = flatten(options)
        word = "option" if len(parts) == 1 else "options"
        super().__init__(f"invalid {word} ({'; '.join(parts)})")
        self.options = options

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "message": self.message,
                "options": self.options}


class OperationUnsupported(DbError):
    code, name = 12, "operation unsupported"
    status = 405


class ForeignKeysUnresolved(DbError):
    code, name = 13, "foreign keys unresolved"

    def __init__(self, field: str, parent: str, key: Mapping[str, Any]) -> None:
        (kname, _), = key.items()
        detail = (f"the foreign key cannot be resolved with '{lua_repr(key)}' for an existing "
                  f"'{parent}' entity")
        super().__init__(f"foreign key unresolved ({field}.{kname}: {detail})",
                         {field: {kname: detail}})


class ReferencedByOthers(DbError):
    code, name = 19, "referenced by others"


class DatabaseUnavailable(RampartsError):
    """The database cannot be reached; the Admin API answers 503 and the proxy keeps serving."""

    status = 503


class PayloadTooLarge(RampartsError):
    status = 413


class BadRequest(RampartsError):
    status = 400


class UnsupportedMediaType(RampartsError):
    status = 415


class MethodNotAllowed(RampartsError):
    status = 405

    def __init__(self) -> None:
        super().__init__("Method not allowed")


class EndpointNotFound(RampartsError):
    """A plain ``{"message": "Not found"}`` (unknown path or missing entity on GET)."""

    status = 404

    def __init__(self, message: str = "Not found") -> None:
        super().__init__(message)


class MisdirectedRequest(RampartsError):
    """The ``Host`` names nobody this Admin API answers for (DNS rebinding, a stray proxy)."""

    status = 421


class Unauthorized(RampartsError):
    """No valid credentials where they are required, or invalid ones sent; Kong EE's words."""

    status = 401

    def __init__(self, message: str = "Invalid RBAC credentials", *,
                 token_sent: bool = False) -> None:
        super().__init__(message)
        self.token_sent = token_sent

    def headers(self) -> dict[str, str]:
        challenge = 'Bearer realm="ramparts-admin"'
        if self.token_sent:
            challenge += ', error="invalid_token"'
        return {"WWW-Authenticate": challenge}


class Forbidden(RampartsError):
    """Authenticated, but the role (or the request's origin) does not allow this."""

    status = 403


class SecretUnavailable(RampartsError):
    """A stored secret cannot be decrypted with this node's keyring (unknown key id, or a
    failed authentication tag). The message names the value and the key id, never the key."""

    status = 500

    def __init__(self, key_id: str, message: str) -> None:
        super().__init__(message)
        self.key_id = key_id


class InvalidDeclarativeConfig(DbError):
    """A declarative file (``kong.yml``, ``POST /config``) that does not validate: ``fields``
    mirrors the input's nesting; ``flattened`` is Kong's ``flattened_errors`` list (sent only
    when asked for with ``flatten_errors=1``)."""

    code, name = 14, "invalid declarative configuration"

    def __init__(self, fields: FieldErrors, flattened: list[dict[str, Any]] | None = None
                 ) -> None:
        super().__init__(f"declarative config is invalid: {lua_repr(fields)}", fields)
        self.flattened = flattened or []
        self.with_flattened = False

    def body(self) -> dict[str, Any]:
        out = super().body()
        if self.with_flattened:  # Kong: the errors are in the flat list only
            out.update(message="declarative config is invalid: {}", fields={},
                       flattened_errors=self.flattened)
        return out


class DeclarativeSyntaxError(RampartsError):
    """A declarative file that is not YAML/JSON at all, or not a map."""

    status = 400
