"""Snapshot parts are taken over from the previous build exactly when their input rows are
the very same objects, and a build with reuse equals a build from scratch."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.reuse import Reuse
from gateway.snapshot import Loaded, build_snapshot
from tests.pki import ec_pair

A, B = {"id": "a", "v": 1}, {"id": "b", "v": 2}


@pytest.mark.parametrize(("second", "rebuilt"), [
    ([A, B], False),                    # the same objects
    ([A, dict(B)], True),               # an equal but new row: it was read again
    ([A], True),                        # a row gone
    ([A, B, {"id": "c"}], True),        # a row added
    ([B, A], True),                     # another order (Kong's route order can depend on it)
])
def test_part_is_reused_only_for_the_same_rows(second: list[dict[str, Any]], rebuilt: bool
                                               ) -> None:
    reuse = Reuse()
    first = reuse.part("p", ([A, B],), lambda: "first")
    again = reuse.part("p", (second,), lambda: "second")
    assert first == "first" and (again == "second") is rebuilt
    assert reuse.rebuilt == (["p", "p"] if rebuilt else ["p"])


def test_records_keep_their_record_per_unchanged_row() -> None:
    reuse = Reuse()
    one = reuse.records("t", [A, B], lambda r: object())
    b2 = dict(B)
    two = reuse.records("t", [A, b2], lambda r: object())
    assert two[0] is one[0] and two[1] is not one[1]


ROWS_SERVICE = {"id": "11111111-1111-4111-8111-111111111111", "created_at": 0,
                "updated_at": 0, "host": "127.0.0.1", "port": 80, "protocol": "http",
                "path": None}


def rows(n: int, certs: list[tuple[str, str]]) -> dict[str, list[dict[str, Any]]]:
    cert_rows = [{"id": f"c{i}", "cert": c, "key": k} for i, (c, k) in enumerate(certs)]
    return {
        "services": [ROWS_SERVICE],
        "routes": [{"id": f"r{i}", "created_at": 0, "updated_at": 0, "hosts": [f"h{i}.test"],
                    "service": {"id": ROWS_SERVICE["id"]}} for i in range(n)],
        "certificates": cert_rows,
        "snis": [{"id": f"s{i}", "name": f"h{i}.test", "certificate": {"id": f"c{i}"}}
                 for i in range(len(certs))],
    }


def test_the_same_list_of_rows_is_one_identity_check() -> None:
    reuse, made = Reuse(), list[object]()
    rows = [A, B]
    one = reuse.records("t", rows, made.append)
    assert reuse.records("t", rows, made.append) is one and len(made) == 2
    assert reuse.part("p", (rows,), lambda: "first") == "first"
    assert reuse.part("p", (rows,), lambda: "second") == "first"


def test_one_certificate_changed_rebuilds_the_index_not_the_router() -> None:
    certs = [ec_pair(f"h{i}.test") for i in range(3)]
    first_rows = rows(3, certs)
    reuse = Reuse()
    first = build_snapshot(Loaded(1, first_rows), reuse=reuse)
    changed = {**first_rows, "certificates": [*first_rows["certificates"][:2],
                                              {"id": "c2", "cert": certs[0][0],
                                               "key": certs[0][1]}]}
    second = build_snapshot(Loaded(2, changed), reuse=reuse)
    assert "router" not in reuse.rebuilt and "plugins" not in reuse.rebuilt
    assert "certs" in reuse.rebuilt
    assert second.router is first.router
    scratch = build_snapshot(Loaded(2, changed))
    assert {k: v.digest for k, v in second.certs.names.items()} == \
        {k: v.digest for k, v in scratch.certs.names.items()}
    assert second.certs.lookup("h2.test").cert == certs[0][0]  # type: ignore[union-attr]
