"""Kong's declarative error tree: errors placed where the input had them (maps by key, lists
by position, padded with nulls), and its flattened form (``flatten_errors=1``). Pure."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

Path = tuple[str | int, ...]


def put(tree: dict[str, Any], path: Path, err: Any) -> None:
    """Place ``err`` at ``path`` (strings are map keys, ints list positions, padded with
    nulls); field errors at one place merge, the first message for a field wins."""
    node: Any = tree
    for step, nxt in itertools.pairwise(path):
        child = _get(node, step)
        if not isinstance(child, (dict, list)):
            child = [] if isinstance(nxt, int) else {}
            _set(node, step, child)
        node = child
    last = path[-1]
    current = _get(node, last)
    if isinstance(current, str) and isinstance(err, dict):
        current = {"@entity": [current]}
        _set(node, last, current)
    elif isinstance(current, dict) and isinstance(err, str):
        err = {"@entity": [err]}
    if isinstance(current, dict) and isinstance(err, dict):
        for key, value in err.items():
            if key == "@entity" and isinstance(current.get(key), list):
                current[key] = [*current[key], *value]
            else:
                current.setdefault(key, value)
    else:
        _set(node, last, err)


def _get(node: Any, step: str | int) -> Any:
    if isinstance(node, list):
        return node[step] if isinstance(step, int) and step < len(node) else None
    return node.get(step)


def _set(node: Any, step: str | int, value: Any) -> None:
    if isinstance(node, list):
        assert isinstance(step, int)
        node.extend([None] * (step + 1 - len(node)))
    node[step] = value


def flat_errors(fields: Mapping[str, Any], prefix: str = "") -> list[dict[str, str]]:
    """Kong's ``flattened_errors[].errors``: ``{type: entity|field, field?, message}``."""
    out: list[dict[str, str]] = []
    for key, value in fields.items():
        if key == "@entity":
            for message in value:
                if prefix:
                    out.append({"type": "field", "field": prefix.rstrip("."),
                                "message": str(message)})
                else:
                    out.append({"type": "entity", "message": str(message)})
        elif isinstance(value, dict):
            out.extend(flat_errors(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    out.extend(flat_errors(item, f"{prefix}{key}.{i}."))
                elif item is not None:
                    out.append({"type": "field", "field": f"{prefix}{key}.{i}",
                                "message": str(item)})
        else:
            out.append({"type": "field", "field": f"{prefix}{key}", "message": str(value)})
    return out
