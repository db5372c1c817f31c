"""Entity-level checks (Kong's ``entity_checks``) with Kong's exact messages.

Each check is a callable taking the normalised record and returning ``(field, message)`` pairs
(``field=None`` means ``@entity``). ``fields`` lists what it reads: the check is skipped when
one of those fields already failed, as Kong does, unless the check is ``always`` (Kong's
checkers that run with invalid fields).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Issues = list[tuple[str | None, str]]


def quoted(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _empty(value: Any) -> bool:
    return value is None or value in ("", [], {}, ())


def _get(values: Mapping[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


@dataclass(frozen=True)
class AtLeastOneOf:
    fields: tuple[str, ...]
    always = True

    def __call__(self, values: Mapping[str, Any]) -> Issues:
        if all(_empty(_get(values, f)) for f in self.fields):
            return [(None, "at least one of these fields must be non-empty: "
                     + quoted(self.fields))]
        return []


@dataclass(frozen=True)
class OnlyOneOf:
    """Kong's ``only_one_of`` (whose message says "exactly one"). Like every Kong checker
    without ``run_with_missing_fields``, it is skipped when all its fields are null: acl's
    ``{}`` gets only the ``at_least_one_of`` message."""

    fields: tuple[str, ...]
    always = True

    def __call__(self, values: Mapping[str, Any]) -> Issues:
        if all(_get(values, f) is None for f in self.fields):
            return []
        if sum(not _empty(_get(values, f)) for f in self.fields) != 1:
            return [(None, "exactly one of these fields must be non-empty: "
                     + quoted(self.fields))]
        return []


@dataclass(frozen=True)
class MutuallyExclusive:
    fields: tuple[str, ...]

    def __call__(self, values: Mapping[str, Any]) -> Issues:
        if sum(not _empty(_get(values, f)) for f in self.fields) > 1:
            return [(None, "only one or none of these fields must be set: "
                     + quoted(self.fields))]
        return []


@dataclass(frozen=True)
class MutuallyRequired:
    fields: tuple[str, ...]

    def __call__(self, values: Mapping[str, Any]) -> Issues:
        present = [not _empty(_get(values, f)) for f in self.fields]
        if any(present) and not all(present):
            return [(None, "all or none of these fields must be set: " + quoted(self.fields))]
        return []


@dataclass(frozen=True)
class Distinct:
    fields: tuple[str, ...]
    always = True

    def __call__(self, values: Mapping[str, Any]) -> Issues:
        seen = [_get(values, f) for f in self.fields]
        present = [v for v in seen if v is not None]
        if len(present) != len(set(map(repr, present))):
            return [(None, "values of these fields must be distinct: " + quoted(self.fields))]
        return []


@dataclass(frozen=True)
class Conditional:
    """If ``if_field`` satisfies ``when``, ``then_field`` must satisfy ``then`` (which returns
    the field's error message or None). Kong reports both an ``@entity`` line and the field."""

    if_field: str
    when: Callable[[Any], bool]
    then_field: str
    then: Callable[[Any], str | None]
    always = True

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.if_field, self.then_field)

    def __call__(self, values: Mapping[str, Any]) -> Issues:
        if not self.when(_get(values, self.if_field)):
            return []
        err = self.then(_get(values, self.then_field))
        if err is None:
            return []
        return [(None, f"failed conditional validation given value of field '{self.if_field}'"),
                (self.then_field, err)]


@dataclass(frozen=True)
class Custom:
    """A check that needs code: ``fn`` returns issues in the common shape."""

    fields: tuple[str, ...]
    fn: Callable[[Mapping[str, Any]], Issues]
    always: bool = False  # run even when one of `fields` already failed

    def __call__(self, values: Mapping[str, Any]) -> Issues:
        return self.fn(values)


def must_be_null(value: Any) -> str | None:
    return None if value is None else "value must be null"


def in_set(*options: Any) -> Callable[[Any], bool]:
    return lambda value: value in options


def not_in_set(*options: Any) -> Callable[[Any], bool]:
    return lambda value: value is not None and value not in options
