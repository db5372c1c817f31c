"""The PDK objects a handler sees: made on first use, Content-Length as Kong's header
filters see it."""

from __future__ import annotations

from gateway.plugins.pdk import ClientView, Kong, RequestView, ResponseView


class Exchange:
    """Where the views come from (the proxy's exchange in production): counts what is made."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def request_view(self) -> RequestView:
        self.made.append("request")
        return RequestView("GET", "https", "h", 443, "/", b"", [(b"X-A", b"1")])

    def client_view(self) -> ClientView:
        self.made.append("client")
        return ClientView(ip="127.0.0.1", tls=None)


def test_request_and_client_are_made_when_a_plugin_first_reads_them() -> None:
    source = Exchange()
    kong = Kong(protocol="https", source=source)
    assert kong.consumer_id is None and kong.ctx_value("client_verify") is None
    assert source.made == []  # nothing read yet: nothing made
    assert kong.request.get_header("x-a") == "1" and kong.request.path == "/"
    assert kong.client.ip == "127.0.0.1" and kong.client.ip == "127.0.0.1"
    assert source.made == ["request", "client"]  # once each


def test_content_length_is_a_header_the_filters_may_read_change_or_clear() -> None:
    response = ResponseView(200, [(b"content-type", b"text/plain")], "service", 5)
    assert response.get_header("Content-Length") == "5"
    response.set_header("Content-Length", "7")
    assert response.length == 7 and response.headers == [(b"content-type", b"text/plain")]
    response.clear_header("content-length")
    response.clear_header("Content-Type")
    assert response.length is None and response.get_header("content-length") is None
    assert response.headers == []


def test_the_response_head_is_viewed_only_when_a_filter_reads_it() -> None:
    kong = Kong(protocol="https", source=Exchange())
    assert kong.filter_head((), 200, [(b"x-a", b"1")], 5, "service") == (
        200, [(b"x-a", b"1")], 5)
    assert kong._response is None  # nobody asked: no view
    response = kong.response
    assert (response.status, response.source, response.get_header("content-length")) == (
        200, "service", "5")

    def edit(k: Kong) -> None:
        k.response.clear_header("Content-Length")
        k.response.status = 299

    assert kong.filter_head((edit,), 200, [(b"x-a", b"1")], 5, "service") == (
        299, [(b"x-a", b"1")], None)
    early = Kong(protocol="https", source=Exchange())
    made = early.response  # made in access (an exit, say): the head updates the same view
    assert early.filter_head((), 404, [], None, "exit") == (404, [], None)
    assert early.response is made and made.status == 404 and made.source == "exit"


