"""Route regexes (``paths`` ``~...`` and header ``~*...`` values) on RE2.

Python's ``re`` backtracks: ``~/r/(a+)+$`` against ``/r/aaaa…a!`` doubles its time with every
character, and the event loop it runs on serves every other request. RE2 matches in time linear
in the input whatever the pattern, which is why it refuses what needs backtracking
(backreferences, lookaround). Kong's own router (ATC, Rust's ``regex`` crate) refuses the same.

The same compile runs when a route is written (``regex_error``) and when the snapshot is built
(``RouteRegex``), so a pattern that is stored can always be built.

Matching runs on bytes: the proxy decodes request paths and header values as Latin-1, so
encoding them back gives the bytes the client sent, which a UTF-8 pattern (``/café``) matches
as Kong's does; capture texts are decoded the same way, so they line up with the path string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import re2

PCRE_WORDING_MAX = 4096  # characters


def _options(ignore_case: bool) -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is a 400, not a line on stderr
    options.case_sensitive = not ignore_case
    return options


def _encode(text: str) -> tuple[bytes, str]:
    try:
        return text.encode("latin-1"), "latin-1"
    except UnicodeEncodeError:  # not from the wire (a caller's own str): UTF-8, as re2 does
        return text.encode("utf-8", "surrogateescape"), "utf-8"


class RegexError(ValueError):
    """RE2 refuses the pattern; the message says which and why."""

    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__(f"route regex '{pattern}': {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RegexMatch:
    text: str  # the whole match (what ``strip_path`` removes)
    captures: Mapping[str, str]  # named groups by name, every group by its number ("1", ...)


class RouteRegex:
    """A compiled route regex. Raises ``RegexError`` for a pattern RE2 refuses."""

    __slots__ = ("_names", "_regex", "pattern")

    def __init__(self, pattern: str, ignore_case: bool = False) -> None:
        self.pattern = pattern
        try:
            self._regex = re2.compile(pattern.encode("utf-8", "surrogateescape"),
                                      _options(ignore_case))
        except re2.error as exc:
            raise RegexError(pattern, _reason(exc)) from None
        self._names = tuple((_text(name), index)
                            for name, index in self._regex.groupindex.items())

    def match(self, text: str) -> RegexMatch | None:
        """Anchored at the start of ``text`` (Kong's ``^`` + the route's regex)."""
        data, codec = _encode(text)
        found = self._regex.match(data)
        if found is None:
            return None
        groups = found.groups()
        captures = {name: groups[index - 1].decode(codec) for name, index in self._names
                    if groups[index - 1] is not None}
        captures.update({str(i): value.decode(codec) for i, value in enumerate(groups, 1)
                         if value is not None})
        return RegexMatch(found.group(0).decode(codec), captures)

    def search(self, text: str) -> bool:
        return self._regex.search(_encode(text)[0]) is not None


def regex_error(pattern: str, ignore_case: bool = False) -> str | None:
    """Kong's ``invalid regex: '<re>' (...)`` for a pattern the router could not build, else
    None. A syntax error keeps Kong's PCRE wording; a valid PCRE pattern that needs
    backtracking says that this is what is refused."""
    try:
        RouteRegex(pattern, ignore_case)
    except RegexError as exc:
        reason = exc.reason
    else:
        return None
    # Python's re only picks the wording, and compiles slowly (seconds for 300 kB, on the
    # event loop): a pattern that long gets RE2's words
    if len(pattern) <= PCRE_WORDING_MAX:
        try:
            re.compile(to_python_regex(pattern))
        except (re.error, RecursionError, OverflowError) as exc:
            return f"invalid regex: '{pattern}' (PCRE returned: {exc})"
    return (f"invalid regex: '{pattern}' (RE2 returned: {reason}; route regexes run in "
            "linear time, without backreferences or lookaround)")


def _reason(exc: Exception) -> str:
    return _text(exc.args[0] if exc.args else exc)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def to_python_regex(pattern: str) -> str:
    """PCRE named groups ``(?<n>...)`` are written ``(?P<n>...)`` in Python."""
    return re.sub(r"\(\?<([A-Za-z_][A-Za-z0-9_]*)>", r"(?P<\1>", pattern)
