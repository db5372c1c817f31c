"""What a snapshot build may take over from the previous build: typed records and derived
parts (router, certificate index, plugin chains, ...) whose input rows are the very same
objects as last time.

The reloader's row cache (``gateway/db/rowcache.py``) hands an unchanged row over as the
same object, so "unchanged" is an identity check, a pointer comparison per row: with 10,000
routes and one certificate changed, the router and the plugin chains are not rebuilt.
A ``Reuse`` belongs to one reloader (builds run one at a time); a fresh one rebuilds all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

T = TypeVar("T")
Rows = Sequence[Mapping[str, Any]]


class Reuse:
    def __init__(self) -> None:
        self._parts: dict[str, tuple[tuple[Rows, ...], object]] = {}
        self._records: dict[str, dict[Any, tuple[object, object]]] = {}
        self._lists: dict[str, tuple[Rows, list[Any]]] = {}  # the last rows -> records
        self.rebuilt: list[str] = []  # the parts the last build made anew (logs, benchmark)

    def begin(self) -> None:
        self.rebuilt = []

    def part(self, name: str, inputs: tuple[Rows, ...], make: Callable[[], T]) -> T:
        """``make()``'s value, or the previous build's when every input row is the same."""
        old = self._parts.get(name)
        if old is not None and _same(old[0], inputs):
            return cast(T, old[1])
        value = make()
        self._parts[name] = (inputs, value)
        self.rebuilt.append(name)
        return value

    def records(self, name: str, rows: Rows, make: Callable[[Mapping[str, Any]], T]
                ) -> list[T]:
        """One record per row, in order; a row seen last time (same object) keeps its
        record. Records of rows that are gone are dropped. The very same list of rows as
        last time (a table the reload did not change) costs one identity check."""
        last = self._lists.get(name)
        if last is not None and last[0] is rows:
            return cast(list[T], last[1])
        old = self._records.get(name, {})
        new: dict[Any, tuple[object, object]] = {}
        out: list[T] = []
        for row in rows:
            hit = old.get(row["id"])
            if hit is None or hit[0] is not row:
                hit = (row, make(row))
            new[row["id"]] = hit  # the old pair itself: no garbage per unchanged row
            out.append(cast(T, hit[1]))
        self._records[name] = new
        self._lists[name] = (rows, out)
        return out


def _same(old: tuple[Rows, ...], new: tuple[Rows, ...]) -> bool:
    if len(old) != len(new):
        return False
    for a, b in zip(old, new, strict=True):
        if a is b:  # the same list: a table the reload did not change
            continue
        if len(a) != len(b) or any(x is not y for x, y in zip(a, b, strict=True)):
            return False
    return True
