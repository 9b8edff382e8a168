"""The Host allowlist as a pure object (the DNS-rebinding defence), and the defaults
``serve`` derives from the address it binds."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sockjs_gateway.protocol.hosts import HostPolicy
from sockjs_gateway.server.hosts import default_host_policy

POLICY = HostPolicy(("app.example.com", "*.example.org", "::1", "LocalHost"))


@pytest.mark.parametrize(
    "host",
    [
        "app.example.com",
        "APP.example.com:8080",  # any port, any case
        "app.example.com.",  # a fully qualified name's trailing dot
        "a.example.org",
        "a.b.example.org:443",
        "[::1]:8080",
        "[::1]",
        "localhost:3000",
        None,  # HTTP/1.0 without Host: not a browser, not a rebinding
        "",
    ],
)
def test_listed_names_are_allowed(host: str | None) -> None:
    assert POLICY.allows(host)


@pytest.mark.parametrize(
    "host",
    [
        "rebind.evil.com",
        "rebind.evil.com:8080",
        "app.example.com.evil.com",
        "example.org",  # the pattern needs a subdomain
        "evil-example.org",
        "127.0.0.1:8080",  # not listed, and IP literals are not on
        "[::2]:8080",
        "app.example.com:8080:1",
    ],
)
def test_other_names_are_refused(host: str) -> None:
    assert not POLICY.allows(host)


def test_empty_or_star_allows_everything() -> None:
    for policy in (HostPolicy(()), HostPolicy(("*",)), HostPolicy(("a.com", "*"))):
        assert policy.any
        assert policy.allows("rebind.evil.com:8080")


def test_ip_literals_can_be_allowed_as_a_class() -> None:
    policy = HostPolicy(("localhost",), ip_literals=True)
    assert policy.allows("10.1.2.3:8080")
    assert policy.allows("[2001:db8::1]:443")
    assert not policy.allows("10.1.2.3.evil.com")
    assert policy.described() == "localhost and any IP address"


@pytest.mark.parametrize("bind", ["127.0.0.1", "localhost", "::1", "0.0.0.0", "::", "10.0.0.5"])
def test_serve_defaults_refuse_rebinding_and_keep_local_names(bind: str) -> None:
    policy = default_host_policy(bind)
    for host in ("rebind.evil.com", "rebind.evil.com:8080", "localhost.evil.com"):
        assert not policy.allows(host)
    for host in ("localhost:8080", "127.0.0.1:8080", "[::1]:8080", "app.localhost:8080"):
        assert policy.allows(host)
    assert policy.allows(f"{socket.gethostname()}:8080")
    assert policy.allows("192.168.1.20:8080")  # any address typed in a URL


def test_serve_defaults_add_the_bound_name_and_extra_names() -> None:
    policy = default_host_policy("myhost.lan", ("app.example.com", "*.example.net"))
    assert policy.allows("myhost.lan:8080")
    assert policy.allows("app.example.com")
    assert policy.allows("x.example.net")
    assert not policy.allows("example.com")
    assert default_host_policy("0.0.0.0", ("*",)).any


@given(st.text())
def test_any_host_header_gets_an_answer(host: str) -> None:
    assert POLICY.allows(host) in (True, False)
