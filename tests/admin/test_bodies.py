"""Request bodies: Kong's form decoding and typing, content types, size limit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from admin.body import decode_pairs


@pytest.mark.parametrize(("pairs", "decoded"), [
    ([("a.b.c", "v")], {"a": {"b": {"c": "v"}}}),
    ([("a", "1"), ("a", "2")], {"a": ["1", "2"]}),
    ([("a[]", "x"), ("a[]", "y")], {"a": ["x", "y"]}),
    ([("a[2]", "x")], {"a": [None, "x"]}),
    ([("a[k]", "v")], {"a": {"k": "v"}}),
    ([("a[b.c]", "v")], {"a": {"b.c": "v"}}),
    ([("config.minute", "5")], {"config": {"minute": "5"}}),
    ([("headers.x-version", "v1")], {"headers": {"x-version": "v1"}}),
    ([("a%5B%5D", "x")], {"a": ["x"]}),
])
def test_decode_pairs(pairs: list[tuple[str, str]], decoded: dict[str, Any]) -> None:
    assert decode_pairs(pairs) == decoded


async def test_content_types(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/services", content=b"{bad", headers={"content-type":
                                                               "application/json"})
    assert r.status_code == 400 and r.json() == {"message": "Cannot parse JSON body"}
    r = await admin.post("/services", content=b"", headers={"content-type":
                                                           "application/json"})
    assert r.status_code == 400 and r.json() == {"message": "Cannot parse JSON body"}
    r = await admin.post("/services", content=b"host=h", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.content == b""
    r = await admin.post("/services", content=b"host=h")  # a body without a content type
    assert r.status_code == 415
    r = await admin.post("/consumers", content=b"")  # no body, no content type: {}
    assert r.status_code == 400 and r.json()["code"] == 2
    r = await admin.post("/services", json={"host": "h"},
                         headers={"content-type": "application/json; charset=utf-8"})
    assert r.status_code == 201
    assert (await admin.get("/services")).json()["data"][0]["host"] == "h"


async def test_json_is_not_typed(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/services", json={"host": "h", "retries": "3"})
    assert r.json()["fields"] == {"retries": "expected an integer"}
    r = await admin.post("/services", json={"host": "h", "config.minute": 5})
    assert r.json()["fields"] == {"config.minute": "unknown field"}


@pytest.mark.parametrize(("form", "field", "value"), [
    ({"retries": "2.5"}, "retries", "expected an integer"),
    ({"enabled": "yes"}, "enabled", "expected a boolean"),
    ({"port": "http"}, "port", "expected an integer"),
])
async def test_form_typing_errors(admin: httpx.AsyncClient, form: dict[str, str], field: str,
                                  value: str) -> None:
    r = await admin.post("/services", data={"host": "h", **form})
    assert r.status_code == 400 and r.json()["fields"] == {field: value}


async def test_too_many_arguments(admin: httpx.AsyncClient) -> None:
    body = "&".join(f"tags[]=t{i}" for i in range(1001))
    r = await admin.post("/services", content=body,
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json() == {"message": "Too many arguments"}


async def test_oversize_body_is_413_and_writes_nothing(admin: httpx.AsyncClient) -> None:
    big = b'{"host":"h","name":"big","tags":["' + b"x" * (11 * 1024 * 1024) + b'"]}'
    r = await admin.post("/services", content=big, headers={"content-type":
                                                            "application/json"})
    assert r.status_code == 413
    assert "admin_max_body_size" in r.json()["message"]
    assert (await admin.get("/services")).json()["data"] == []


async def test_oversize_chunked_body_is_413(admin: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        yield b'{"host":"h","tags":["'
        for _ in range(12):
            yield b"x" * (1024 * 1024)
        yield b'"]}'

    r = await admin.post("/services", content=chunks(),
                         headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert (await admin.get("/services")).json()["data"] == []
