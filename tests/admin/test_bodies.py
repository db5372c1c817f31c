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
    ([("config.allow", "g1"), ("config.allow", "g2")], {"config": {"allow": ["g1", "g2"]}}),
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


FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(("content", "headers", "message"), [
    (b"host=a.com&tags[10000000]=x", FORM, "array index 10000000 is out of range"),
    (b"host=a.com&a" + b"[1]" * 5000 + b"=x", FORM, "too deeply nested"),
    (b'{"host": "a.com", "name": "\\ud800"}', JSON, "Cannot parse JSON body"),
    (b'{"a":' + b"[" * 100000, JSON, "Cannot parse JSON body"),
    (b"", {"content-type": "multipart/form-data"}, "Cannot parse multipart/form-data body"),
    (b"garbage", {"content-type": "multipart/form-data; boundary=x"},
     "Cannot parse multipart/form-data body"),
])
async def test_hostile_bodies_are_400s_and_write_nothing(
        admin: httpx.AsyncClient, content: bytes, headers: dict[str, str], message: str) -> None:
    r = await admin.post("/services", content=content, headers=headers)
    assert r.status_code == 400 and message in r.json()["message"], r.text
    assert (await admin.get("/services")).json()["data"] == []


async def test_two_content_types_are_refused(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/services", content=b'{"host": "a.com"}', headers=[
        ("content-type", "application/json"), ("content-type", "text/plain")])
    assert r.status_code == 400
    assert (await admin.get("/services")).json()["data"] == []


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"created_at": 10**20}, "created_at", "value should be between"),
    ({"created_at": -5}, "created_at", "expected a valid timestamp"),
    ({"port": 2**63}, "port", "value should be between"),
])
async def test_out_of_range_integers(admin: httpx.AsyncClient, body: dict[str, Any],
                                     field: str, message: str) -> None:
    r = await admin.post("/services", json={"host": "a.com", **body})
    assert r.status_code == 400 and message in r.json()["fields"][field], r.text
