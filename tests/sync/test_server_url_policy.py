"""[server] url: plain http:// only to this machine; to any other host the bearer token would travel in clear."""

from __future__ import annotations

import pytest

from workstation.core.site import ConfigError, parse_site_config


@pytest.mark.parametrize("url", ["http://audit.hospital.example:8443", "http://10.0.0.5", "HTTP://audit.example/ws",
                                 "http://[2001:db8::1]:8080", "http://localhost.evil.example"])
def test_plain_http_to_another_host_is_refused_with_the_key_and_the_reason(url):
    with pytest.raises(ConfigError) as failure:
        parse_site_config({"server": {"url": url}})
    assert failure.value.key == "server.url"
    assert "in clear" in failure.value.reason and "bearer token" in failure.value.reason
    assert "https://" in failure.value.reason


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:8443", "http://[::1]:8443",
                                 "http://127.0.0.2", "https://audit.hospital.example:8443"])
def test_https_anywhere_and_http_to_this_machine_are_accepted(url):
    assert parse_site_config({"server": {"url": url}}).server.url == url
