"""Markers that annotate entity dataclass fields (``Annotated[T, marker, ...]``).

An entity is declared once as a frozen dataclass; these markers carry what the Python type
cannot say (ranges, enumerations, Kong typedef validators, foreign keys, uniqueness). The
compiler in ``compile.py`` turns the annotations into a ``FieldSpec`` tree from which the
table, the validator, the form decoder and the JSON view are all derived.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar


class Marker:
    """Base class of every field marker."""


MarkerT = TypeVar("MarkerT", bound=Marker)


@dataclass(frozen=True, slots=True)
class Between(Marker):
    lo: float
    hi: float


@dataclass(frozen=True, slots=True)
class OneOf(Marker):
    values: tuple[Any, ...]

    def __init__(self, *values: Any) -> None:
        object.__setattr__(self, "values", tuple(values))


@dataclass(frozen=True, slots=True)
class LenMin(Marker):
    n: int


@dataclass(frozen=True, slots=True)
class LenMax(Marker):
    n: int


@dataclass(frozen=True, slots=True)
class Check(Marker):
    """A Kong typedef / custom validator: returns an error message, or None when valid."""

    fn: Callable[[Any], str | None]


@dataclass(frozen=True, slots=True)
class Unique(Marker):
    """A unique column; a duplicate is Kong's 409 ``UNIQUE violation detected on ...``."""


@dataclass(frozen=True, slots=True)
class Foreign(Marker):
    """A reference ``{"id": ...}`` to another entity, stored as ``<field>_id``."""

    entity: str
    on_delete: Literal["cascade", "restrict"] = "restrict"


@dataclass(frozen=True, slots=True)
class Auto(Marker):
    """Generated on write (ids and timestamps) when the client does not supply it."""


@dataclass(frozen=True, slots=True)
class Uuid(Marker):
    """A string that must be a UUID (``expected a valid UUID``)."""


@dataclass(frozen=True, slots=True)
class Timestamp(Marker):
    """Seconds since the epoch; ``ms=True`` is Kong's float with millisecond precision."""

    ms: bool = False
    update: bool = False  # refreshed on every write (updated_at)


@dataclass(frozen=True, slots=True)
class Set(Marker):
    """An array with set semantics: duplicates are dropped, first-seen order is kept."""


@dataclass(frozen=True, slots=True)
class Transient(Marker):
    """Accepted on write but not stored on the row (Kong's shorthand fields)."""


@dataclass(frozen=True, slots=True)
class Secret(Marker):
    """Key material: never logged, redacted wherever configuration is echoed."""


@dataclass(frozen=True, slots=True)
class Immutable(Marker):
    """Cannot change after insert (``immutable field cannot be updated``)."""


@dataclass(frozen=True, slots=True)
class PluginConfig(Marker):
    """The plugin ``config`` record: its schema is chosen by the plugin ``name``."""


@dataclass(frozen=True, slots=True)
class AllowEmpty(Marker):
    """A string that may be empty (Kong strings are non-empty unless stated)."""


@dataclass(frozen=True, slots=True)
class Json(Marker):
    """Store this scalar-looking field as JSON (e.g. a value that may be any JSON type)."""
