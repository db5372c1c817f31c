"""The listeners' limits come from nginx's directives (Kong's ``nginx_http_`` names)."""

from __future__ import annotations

import pytest

from gateway.proxy.listeners import limits_of
from gateway.settings.load import SettingsError, load
from gateway.settings.model import parse_buffers, parse_time


@pytest.mark.parametrize(("text", "seconds"), [
    ("60", 60.0), ("60s", 60.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), ("1d", 86400.0),
    ("0", None), ("soon", None), ("-1s", None),
])
def test_parse_time(text: str, seconds: float | None) -> None:
    assert parse_time(text) == seconds


def test_limits_from_settings() -> None:
    settings = load(env={"RAMPARTS_NGINX_HTTP_CLIENT_HEADER_TIMEOUT": "5s",
                         "RAMPARTS_NGINX_HTTP_LARGE_CLIENT_HEADER_BUFFERS": "8 16k"})
    limits = limits_of(settings)
    assert limits.client_header_timeout == 5.0 and limits.keepalive_timeout == 60.0
    assert limits.large_client_header_buffers == 16384
    assert limits.client_header_buffer_total == 8 * 16384
    assert parse_buffers("4 8k") == (4, 8192) and parse_buffers("8k") is None
    assert 0 < limits.worker_connections <= 16384  # auto: the open-file limit, capped
    capped = load(env={"RAMPARTS_NGINX_EVENTS_WORKER_CONNECTIONS": "100"})
    assert limits_of(capped).worker_connections == 100
    assert limits.client_max_body_size == 0  # Kong's default: no limit
    assert limits.send_timeout == 60.0  # nginx's
    assert limits_of(load(env={"RAMPARTS_NGINX_HTTP_SEND_TIMEOUT": "5s"})).send_timeout == 5.0
    sized = load(env={"RAMPARTS_NGINX_HTTP_CLIENT_MAX_BODY_SIZE": "10m"})
    assert limits_of(sized).client_max_body_size == 10 * 1024 * 1024
    # nginx's lingering close: on, 30 s at most, 5 s of silence
    assert (limits.lingering_close, limits.lingering_time, limits.lingering_timeout) == (
        "on", 30.0, 5.0)
    lingering = limits_of(load(env={"RAMPARTS_NGINX_HTTP_LINGERING_CLOSE": "always",
                                    "RAMPARTS_NGINX_HTTP_LINGERING_TIME": "1m",
                                    "RAMPARTS_NGINX_HTTP_LINGERING_TIMEOUT": "500ms"}))
    assert (lingering.lingering_close, lingering.lingering_time,
            lingering.lingering_timeout) == ("always", 60.0, 0.5)


def test_bad_values_name_their_key() -> None:
    with pytest.raises(SettingsError) as bad:
        load(env={"RAMPARTS_NGINX_HTTP_KEEPALIVE_TIMEOUT": "later",
                  "RAMPARTS_PROXY_ACCESS_LOG_FORMAT": "xml",
                  "RAMPARTS_NGINX_HTTP_LINGERING_CLOSE": "sometimes"})
    text = str(bad.value)
    assert "nginx_http_keepalive_timeout" in text and "proxy_access_log_format" in text
    assert "nginx_http_lingering_close" in text
