"""Route regexes on RE2: linear time, Kong's captures, refusals that name what is refused."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from gateway.router.regex import RegexError, RouteRegex, regex_error
from tests.router.test_router import matched, route

# Python's backtracking engine needs about 2**n steps for n 'a's here: 27 took 4.9 s in the
# issue; these sizes take it seconds (so the tests fail in bounded time without RE2)
CATASTROPHIC = (r"/r/(a+)+$", "/r/" + "a" * 26 + "!")


def _timed(fn: Callable[..., object], *args: object) -> tuple[object, float]:
    started = time.monotonic()
    return fn(*args), time.monotonic() - started


@pytest.mark.parametrize(("pattern", "text"), [
    CATASTROPHIC,
    (r"/r/(a|aa)+$", "/r/" + "a" * 36 + "!"),
    (r"/r/(a*)*b", "/r/" + "a" * 26),
])
def test_pathological_patterns_run_in_linear_time(pattern: str, text: str) -> None:
    found, took = _timed(RouteRegex(pattern).match, text)
    assert found is None and took < 1
    longer, took = _timed(RouteRegex(pattern).match, text[:3] + "a" * 100_000 + "!")
    assert longer is None and took < 1


def test_the_router_matches_the_catastrophic_path_at_once() -> None:
    routes = [route("evil", paths=["~" + CATASTROPHIC[0]]), route("fallback", paths=["/"])]
    name, took = _timed(matched, routes, CATASTROPHIC[1])
    assert name == "fallback" and took < 1


def test_captures_named_and_numbered() -> None:
    found = RouteRegex(r"/users/(?<user>\w+)/(?P<tab>[a-z]+)/(\d+)?").match(
        "/users/ana/posts/7/rest")
    assert found is not None
    assert found.text == "/users/ana/posts/7"
    assert found.captures == {"user": "ana", "tab": "posts", "1": "ana", "2": "posts",
                              "3": "7"}
    unmatched = RouteRegex(r"/a(x)?").match("/a")
    assert unmatched is not None and unmatched.captures == {}  # an unset group is left out
    assert RouteRegex("/a").match("/b/a") is None  # anchored at the start, like Kong's ^


def test_non_ascii_paths_match_as_bytes() -> None:
    # the proxy decodes the request path as Latin-1: "café" in UTF-8 arrives as "cafÃ©"
    wire = "/café/x".encode().decode("latin-1")
    found = RouteRegex("/(?<word>café)").match(wire)
    assert found is not None and found.text == "/café".encode().decode("latin-1")
    assert found.captures["word"] == "café".encode().decode("latin-1")


def test_header_regexes_ignore_case_and_search() -> None:
    regex = RouteRegex(r"^mobile-\d+$", ignore_case=True)
    assert regex.search("Mobile-42") and not regex.search("desktop")
    assert RouteRegex("beta", ignore_case=True).search("x-BETA-1")


@pytest.mark.parametrize(("pattern", "kept"), [
    ("/users/(foo", "invalid regex: '/users/(foo' (PCRE returned: "),
    (r"/(?=look)ahead", "invalid regex: '/(?=look)ahead' (RE2 returned: invalid perl operator: "
                        "(?=; "),
    (r"/(?<!x)y", "invalid regex: '/(?<!x)y' (RE2 returned: invalid perl operator: (?<!"),
    (r"/(a)\1", r"invalid regex: '/(a)\1' (RE2 returned: invalid escape sequence: \1"),
    (r"/(?>atomic)", "invalid regex: '/(?>atomic)' (RE2 returned: "),
    (r"/a{5000}", "invalid regex: '/a{5000}' (RE2 returned: invalid repetition size"),
])
def test_refused_patterns_say_why(pattern: str, kept: str) -> None:
    err = regex_error(pattern)
    assert err is not None and err.startswith(kept), err
    with pytest.raises(RegexError, match=r"^route regex '"):
        RouteRegex(pattern)


@pytest.mark.parametrize("pattern", [
    r"/users/\d+", r"/(?<name>[a-z]+)", r"/(?P<name>[a-z]+)", r"/v[0-9]+/(.*)$", r"/a\z",
    r"/(?i)CASE", r"/[[:alpha:]]+",
])
def test_accepted_patterns_build(pattern: str) -> None:
    assert regex_error(pattern) is None
    RouteRegex(pattern)



def test_a_huge_refused_pattern_is_refused_quickly() -> None:
    pattern = "/" + "(?:a|b)" * 50_000 + r"\1"  # 350 kB: Python's re takes over a second
    err, took = _timed(regex_error, pattern)
    assert isinstance(err, str) and "(RE2 returned: " in err and took < 0.7
