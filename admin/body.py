"""Request bodies as Kong's Admin API reads them.

JSON is used as decoded. Form-urlencoded and multipart bodies are decoded into a nested
structure (``a.b=``, ``a[]=``, ``a[1]=``, ``a[k]=``, repeated keys) and then typed against
the entity schema (Kong's ``infer_value``): ``""`` is null, numbers and ``true``/``false``
are converted, single values of array fields are wrapped, ``config.*`` follows the plugin's
schema once its ``name`` is known.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.requests import Request

from gateway.errors import BadRequest, UnsupportedMediaType
from gateway.schema import fields as m
from gateway.schema.compile import FieldSpec, RecordSchema
from gateway.schema.validate import is_uuid
from gateway.text import is_digits
from gateway.tls.pem import repair_form_pem

MAX_ARGS = 1000  # form fields (and multipart parts) per body, as Kong's Admin API
MAX_DEPTH = 32  # form keys and JSON values nest at most this deep (`a[1][1]...`)
TOO_MANY = "Too many arguments"
_APPEND = object()
_KINDS = ("application/json", "multipart/form-data", "application/x-www-form-urlencoded")


class Body:
    """A decoded write body; ``form`` tells whether schema inference applies."""

    def __init__(self, data: dict[str, Any], form: bool) -> None:
        self.data = data
        self.form = form


async def read(request: Request) -> Body:
    if len(request.headers.getlist("content-type")) > 1:
        raise BadRequest("Multiple Content-Type headers are not allowed")
    ctype = request.headers.get("content-type")
    raw = await request.body()
    if ctype is None:
        if raw.strip():
            raise UnsupportedMediaType("")
        return Body({}, form=False)
    if not ctype.startswith(_KINDS):
        raise UnsupportedMediaType("")
    if ctype.startswith("application/json"):
        return Body(_json(raw), form=False)
    if ctype.startswith("application/x-www-form-urlencoded"):
        return Body(decode_pairs([(k, repair_form_pem(v)) for k, v in _urlencoded(raw)]),
                    form=True)
    return Body(decode_pairs(await _multipart(request)), form=True)


def _urlencoded(raw: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True,
                         max_num_fields=MAX_ARGS)
    except ValueError as exc:  # parse_qsl's only refusal: more fields than max_num_fields
        raise BadRequest(TOO_MANY) from exc


def _json(raw: bytes) -> dict[str, Any]:
    try:
        # UTF-8 only (as Kong's cjson): then no byte of a multi-byte character is ASCII, so
        # the byte scans below see only JSON's own quotes, backslashes and brackets
        data = json.loads(raw.decode("utf-8"))
        if _LONE_SURROGATE.search(raw):
            # `"\ud800"` decodes but can be neither stored nor echoed (a full re-encoding,
            # so only when an escape of a surrogate is present at all)
            json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError) as exc:  # UnicodeError is a ValueError
        raise BadRequest("Cannot parse JSON body") from exc
    if not isinstance(data, dict):
        raise BadRequest("Cannot parse JSON body: expected a JSON object")
    if _too_deep(raw):
        raise BadRequest(f"Cannot parse JSON body: nested deeper than {MAX_DEPTH} levels")
    return data


_LONE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
# a JSON string; the unrolled loop has disjoint alternatives, so it never backtracks
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_ONE_KIND = bytes.maketrans(b"{}", b"[]")


def _too_deep(raw: bytes) -> bool:
    """Whether valid JSON nests deeper than ``MAX_DEPTH``, at C speed: with its strings
    gone and only its brackets left (one kind: valid JSON is balanced), each pass that
    deletes the innermost ``[]`` pairs takes exactly one level off. (Walking the decoded
    value costs a Python step per element: tens of milliseconds on the event loop.)"""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return False  # the common case: not even that many brackets
    brackets = _STRING.sub(b"", raw).translate(_ONE_KIND, _NOT_BRACKETS)
    for _ in range(MAX_DEPTH):
        brackets = brackets.replace(b"[]", b"")
        if not brackets:
            return False
    return True


async def _multipart(request: Request) -> list[tuple[str, str]]:
    try:
        form = await request.form(max_files=MAX_ARGS, max_fields=MAX_ARGS,
                                  max_part_size=64 * 1024 * 1024)
    except Exception as exc:  # no boundary, a torn part: the parser's many exception types
        raise BadRequest("Cannot parse multipart/form-data body") from exc
    pairs: list[tuple[str, str]] = []
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            pairs.append((key, (await value.read()).decode("utf-8", "replace")))
        else:
            pairs.append((key, str(value)))
    return pairs


# ------------------------------------------------------------------ key decoding

def _path(key: str) -> list[Any]:
    """``a.b[1][]`` -> ``["a", "b", 1, _APPEND]``: plain runs between ``.``/``[``/``]`` and
    bracketed segments; a ``[`` without a closing ``]`` is dropped."""
    key = key.replace("%5B", "[").replace("%5D", "]").replace("%5b", "[").replace("%5d", "]")
    parts: list[Any] = []
    for bracket, plain in _tokens(key):
        if plain:
            parts.append(plain)
        elif bracket == "":
            parts.append(_APPEND)
        elif is_digits(bracket):
            parts.append(int(bracket))
        else:
            parts.append(bracket)
        if len(parts) > MAX_DEPTH:
            break  # decode_pairs refuses it; no need to tokenise the rest
    return parts or [key]


_PLAIN = re.compile(r"[^.\[\]]+")
_SEPARATORS = re.compile(r"[.\]]*")


def _tokens(key: str) -> list[tuple[str, str | None]]:
    """Linear scan, at most ``MAX_DEPTH + 1`` tokens. A bracket regex retries from every ``[``
    and is quadratic on ``[[[[...``; here a ``[`` that finds no ``]`` proves that no later
    ``[`` will, so the rest can only hold plain runs."""
    out: list[tuple[str, str | None]] = []
    i, n = 0, len(key)
    while len(out) <= MAX_DEPTH:
        skip = _SEPARATORS.match(key, i)
        i = skip.end() if skip else i
        if i >= n:
            break
        if key[i] == "[":
            end = key.find("]", i + 1)
            if end < 0:
                out.extend(("", p) for p in _PLAIN.findall(key, i))
                break
            out.append((key[i + 1:end], None))
            i = end + 1
        else:
            plain = _PLAIN.match(key, i)
            assert plain is not None  # key[i] is none of `.`, `[`, `]`
            out.append(("", plain.group()))
            i = plain.end()
    return out


def decode_pairs(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    if len(pairs) > MAX_ARGS:
        raise BadRequest(TOO_MANY)
    root: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for key, _ in pairs:
        counts[key] = counts.get(key, 0) + 1
    for key, value in pairs:
        path = _path(key)
        if len(path) > MAX_DEPTH:
            raise BadRequest(f"{key[:64]}: too deeply nested")
        if counts[key] > 1 and path[-1] is not _APPEND and not isinstance(path[-1], int):
            path = [*path, _APPEND]  # a repeated key (`config.allow=a&config.allow=b`): a list
        _assign(root, path, value)
    return root


def _assign(node: Any, path: list[Any], value: Any) -> None:
    head, rest = path[0], path[1:]
    if isinstance(node, list):
        index = len(node) if head is _APPEND else (head - 1 if isinstance(head, int) else None)
        if index is None or index < 0:
            return
        if index >= MAX_ARGS:  # `tags[10000000]=x` must not allocate ten million slots
            raise BadRequest(f"array index {index + 1} is out of range (at most {MAX_ARGS})")
        while len(node) <= index:
            node.append(None)
        if not rest:
            node[index] = value
            return
        if not isinstance(node[index], (dict, list)):
            node[index] = [] if rest[0] is _APPEND or isinstance(rest[0], int) else {}
        _assign(node[index], rest, value)
        return
    key = str(head) if head is not _APPEND else ""
    if not rest:
        node[key] = value
        return
    child = node.get(key)
    if not isinstance(child, (dict, list)):
        child = [] if rest[0] is _APPEND or isinstance(rest[0], int) else {}
        node[key] = child
    if isinstance(child, dict) and (rest[0] is _APPEND or isinstance(rest[0], int)):
        return  # mixing `a.b=` and `a[]=`: keep the first shape
    _assign(child, rest, value)


# ------------------------------------------------------------------ schema inference


def infer_record(schema: RecordSchema, data: Mapping[str, Any],
                 plugin_schemas: Mapping[str, RecordSchema] | None = None,
                 plugin_name: str | None = None) -> dict[str, Any]:
    """Type a decoded form against ``schema``; ``plugin_name`` selects the plugin config
    schema when the body does not name the plugin (a PATCH of a stored plugin)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        spec = schema.by_name.get(key)
        if spec is None:
            out[key] = value
        elif spec.has(m.PluginConfig):
            sub = (plugin_schemas or {}).get(str(data.get("name") or plugin_name or ""))
            if value == "":
                out[key] = None
            elif sub is not None and isinstance(value, dict):
                out[key] = infer_record(sub, value, plugin_schemas)
            else:
                out[key] = value
        else:
            out[key] = infer(spec, value)
    return out


def infer(spec: FieldSpec, value: Any) -> Any:
    if value == "" or value is None:
        return None
    kind = spec.kind
    if kind in ("integer", "number") and isinstance(value, str):
        return _number(value)
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    if kind in ("array", "set") and spec.elements is not None:
        items = value if isinstance(value, list) else [value]
        return [infer(spec.elements, v) for v in items]
    if kind == "map" and isinstance(value, dict) and spec.elements is not None:
        elements = spec.elements
        return {k: infer(elements, v) for k, v in value.items()}
    if kind == "record" and isinstance(value, dict) and spec.record is not None:
        return infer_record(spec.record, value)
    if kind == "foreign" and isinstance(value, str) and is_uuid(value):
        return {"id": value}  # `service=<uuid>`: Kong rejects it; nothing else can be meant
    return value


def _number(text: str) -> Any:
    stripped = text.strip()
    if not stripped.isascii():
        return text  # float() reads "٣" as 3: only ASCII digits make a number
    try:
        if re.fullmatch(r"[+-]?[0-9]+", stripped):
            return int(stripped)
        if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]+", stripped):
            return int(stripped, 16)
        number = float(stripped)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in stripped and "e" not in \
        stripped.lower() else number
