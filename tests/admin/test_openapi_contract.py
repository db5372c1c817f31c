"""schemathesis against ``GET /openapi.json``: every operation, bounded and reproducible.

The Admin API runs in process (ASGI) on an event loop thread of its own, with a database of
its own per backend; requests carry ``Host: localhost:8001``. For every generated request:
no 5xx, the status code, content type and body conform to the contract, and a rejected write
(4xx) changes nothing — every row of every table, compared before and after.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import requests
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from schemathesis import BaseSchema, Case, CheckContext, CheckFunction
from schemathesis import Response as CheckedResponse
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from admin.app import create_app
from admin.meta import NodeInfo
from gateway import registry
from gateway.db import migrate, tables
from gateway.db.store import Store
from gateway.settings.load import load
from tests.conftest import create_pg_database, drop_pg_database, pg_url

T = TypeVar("T")
BASE = "http://localhost:8001"
WRITES = ("POST", "PUT", "PATCH", "DELETE")
FORM, MULTIPART = "application/x-www-form-urlencoded", "multipart/form-data"
CALL_TIMEOUT = 30.0
# examples and fuzzing only: the coverage phase (every boundary of every parameter) costs
# fifteen times as much and would take the run far past its CI budget of about 3 minutes
CONFIG = schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False},
                                                   "stateful": {"enabled": False}}})

Listing = dict[str, list[tuple[Any, ...]]]


class Node:
    """The Admin API and its store on a private event loop, driven from the test thread."""

    def __init__(self, db_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.store = Store(db_url, registry.build())
        self.run(migrate.upgrade(self.store.engine))
        node = NodeInfo(settings=load(env={}), node_id=str(uuid.uuid4()))
        self.last: Listing | None = None
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(
            self.store, node)), base_url=BASE)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(CALL_TIMEOUT)

    def send(self, kwargs: dict[str, Any]) -> httpx.Response:
        """Send what schemathesis serialised for ``requests``, byte for byte."""
        prepared = requests.Request(
            method=kwargs["method"], url=kwargs["url"], headers=kwargs.get("headers"),
            params=kwargs.get("params"), data=kwargs.get("data"), json=kwargs.get("json"),
            files=kwargs.get("files"), cookies=kwargs.get("cookies")).prepare()
        body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
        return self.run(self.client.request(
            str(prepared.method), str(prepared.url), headers=dict(prepared.headers),
            content=body or b""))

    def listing(self) -> Listing:
        """Every row of every table (config version included), in a stable order. Reads only
        after a write may have changed something: GETs and rejected writes keep the last."""
        if self.last is None:
            self.last = self.read_all()
        return self.last

    def read_all(self) -> Listing:
        async def read() -> Listing:
            out: Listing = {}
            async with self.store.engine.connect() as conn:
                for table in tables.metadata.sorted_tables:
                    if table is tables.audit_log:
                        continue  # a rejected write is recorded there, by design
                    rows = (await conn.execute(sa.select(table))).all()
                    out[table.name] = sorted((tuple(r) for r in rows), key=repr)
            return out

        return self.run(read())

    def close(self) -> None:
        self.run(self.client.aclose())
        self.run(self.store.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Node]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("contract") / "ramparts.db"
        instance = Node(f"sqlite:///{path}")
        yield instance
        instance.close()
        return
    name = create_pg_database("ramparts_contract")
    instance = Node(pg_url(name))
    try:
        yield instance
    finally:
        instance.close()
        drop_pg_database(name)


def served_contract() -> BaseSchema:
    """The document exactly as the app serves it; building it needs no database (no query
    runs), so the operations are known when pytest collects them."""
    app = create_app(Store("sqlite://", registry.build()),
                     NodeInfo(settings=load(env={}), node_id=str(uuid.uuid4())))

    async def fetch() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url=BASE) as client:
            return await client.get("/openapi.json")

    response = asyncio.run(fetch())
    assert response.status_code == 200
    return schemathesis.openapi.from_dict(response.json(), config=CONFIG)


schema = served_contract()


def unchanged_by(before: Listing, node: Node) -> Any:
    """The custom check: a write answered with 4xx left every table as it was."""

    def rejected_write_changes_nothing(ctx: CheckContext, response: CheckedResponse,
                                       case: Case[Any]) -> bool | None:
        if case.method.upper() not in WRITES or not 400 <= response.status_code < 500:
            return None
        after = node.last = node.read_all()  # a failure here must not spill into later cases
        changed = sorted(t for t in after if after[t] != before.get(t))
        assert not changed, f"a rejected {case.method} {case.path} changed {changed}"
        return True

    return rejected_write_changes_nothing


@schema.parametrize()
@settings(max_examples=20, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_and_rejected_writes_change_nothing(
        case: Case[Any], node: Node) -> None:
    before = node.listing() if case.method.upper() in WRITES else {}
    kwargs = case.as_transport_kwargs(base_url=BASE)
    response = node.send(kwargs)
    if case.method.upper() in WRITES and not 400 <= response.status_code < 500:
        node.last = None  # the write went through: read everything again next time
    # A schema-valid body may still be refused: Kong's typedef checks (hosts, paths, PEM,
    # regexes, cross-field rules) are not expressible in JSON Schema and answer 400.
    excluded: list[CheckFunction] = [positive_data_acceptance]
    if case.path == "/consumers" and "custom_id" in (case.query or {}):
        # Kong's lookup by custom_id ignores size, offset and tags, whatever they hold
        excluded.append(negative_data_rejection)
    if case.media_type in (FORM, MULTIPART):
        # form values are text: a number or a one-element "array" generated as wrong data
        # travels as the same text as a right one (and Kong wraps a single value in a list)
        excluded.append(negative_data_rejection)
    case.validate_response(response, additional_checks=[unchanged_by(before, node)],
                           excluded_checks=excluded)
