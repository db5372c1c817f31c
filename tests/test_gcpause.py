"""The collector is off exactly while a snapshot is built or rows are converted, and on again
afterwards, whatever happened inside (nested pauses, errors, a process that had it off)."""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from gateway import gcpause
from gateway.plugins.runtime import Handler
from gateway.snapshot import Loaded, build_snapshot


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_nested_pauses_resume_once_the_last_ends() -> None:
    with gcpause.paused():
        assert not gc.isenabled()
        with gcpause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_error_inside_still_resumes() -> None:
    with pytest.raises(RuntimeError), gcpause.paused():
        raise RuntimeError("build failed")
    assert gc.isenabled()


def test_a_collector_switched_off_stays_off() -> None:
    gc.disable()
    with gcpause.paused():
        pass
    assert not gc.isenabled()


def test_a_snapshot_is_built_with_the_collector_paused() -> None:
    seen: list[bool] = []

    class Probe(Handler):  # built by the snapshot's plugin chains
        def __init__(self, config: Mapping[str, Any]) -> None:
            super().__init__(config)
            seen.append(gc.isenabled())

        def access(self, kong: Any) -> None:
            return None

    plugin = {"id": str(uuid.uuid4()), "name": "probe", "enabled": True, "config": {},
              "protocols": ["http"], "route": None, "service": None, "consumer": None}
    build_snapshot(Loaded(version=1, rows={"plugins": [plugin]}), handlers={"probe": Probe})
    assert seen == [False] and gc.isenabled()
