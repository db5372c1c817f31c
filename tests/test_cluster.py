"""The cluster view (pure): lag, current, laggards, as a table."""

from __future__ import annotations

import pytest

from gateway.cluster import reached, view
from gateway.db.nodes import NodeState, SeenNode


def seen(node_id: str, applied: int, error: str | None = None) -> SeenNode:
    return SeenNode(NodeState(node_id, "host", applied, 1.5, error), 0.25)


@pytest.mark.parametrize(("stored", "applied", "wait_for", "lags", "current", "laggards",
                          "done"), [
    (5, [5, 5], None, [0, 0], True, None, None),
    (5, [5, 4], None, [0, 1], False, None, None),
    (5, [6, 5], None, [0, 0], True, None, None),  # read its version after our read
    (5, [5, 4], 4, [0, 1], False, [], True),  # both reached 4
    (5, [5, 4], 5, [0, 1], False, ["n1"], False),
    (7, [], 7, [], False, [], False),  # no live node: nothing to wait for is not "done"
])
def test_view(stored: int, applied: list[int], wait_for: int | None, lags: list[int],
              current: bool, laggards: list[str] | None, done: bool | None) -> None:
    answer = view(stored, [seen(f"n{i}", v) for i, v in enumerate(applied)], wait_for)
    assert answer["configuration_version"] == stored
    assert [n["lag"] for n in answer["data"]] == lags
    assert answer["current"] is current
    assert answer.get("laggards") == laggards
    if done is not None:
        assert reached(answer) is done


def test_view_reports_a_failed_build() -> None:
    answer = view(3, [seen("n0", 2, "configuration version 3 cannot be built: X")])
    node = answer["data"][0]
    assert node == {"id": "n0", "hostname": "host", "applied_configuration_version": 2,
                    "applied_at": 1.5, "last_seen": 0.25, "lag": 1, "current": False,
                    "configuration_error": "configuration version 3 cannot be built: X"}
