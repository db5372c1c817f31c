"""Kong's declarative error tree, as a table: what lands where."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.declarative.tree import Path, flat_errors, put


@pytest.mark.parametrize(("puts", "tree"), [
    ([(("services", 1), {"host": "required field missing"})],
     {"services": [None, {"host": "required field missing"}]}),
    ([(("services", 0, "routes", 2), {"paths": "x"})],
     {"services": [{"routes": [None, None, {"paths": "x"}]}]}),
    ([(("services", 0), {"a": "first"}), (("services", 0), {"a": "second", "b": "y"})],
     {"services": [{"a": "first", "b": "y"}]}),  # the first message for a field wins
    ([(("services", 0), "uniqueness violation"), (("services", 0), {"a": "x"})],
     {"services": [{"@entity": ["uniqueness violation"], "a": "x"}]}),
    ([(("services", 0), {"a": "x"}), (("services", 0), "uniqueness violation")],
     {"services": [{"@entity": ["uniqueness violation"], "a": "x"}]}),
    ([(("_format_version",), "required field missing")],
     {"_format_version": "required field missing"}),
])
def test_put(puts: list[tuple[Path, Any]], tree: dict[str, Any]) -> None:
    out: dict[str, Any] = {}
    for path, err in puts:
        put(out, path, err)
    assert out == tree


def test_flat_errors() -> None:
    assert flat_errors({"@entity": ["bad pair"], "port": "too big",
                        "config": {"allow": "required field missing"},
                        "tags": [None, "expected a string"]}) == [
        {"type": "entity", "message": "bad pair"},
        {"type": "field", "field": "port", "message": "too big"},
        {"type": "field", "field": "config.allow", "message": "required field missing"},
        {"type": "field", "field": "tags.1", "message": "expected a string"}]
