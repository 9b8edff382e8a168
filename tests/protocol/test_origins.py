"""The origin allowlist as a pure object: same-origin matching (scheme, host and port)
against the request's scheme and Host header, patterns, the ``*`` wildcard, the origin of
a ``Referer``, and the scheme a TLS proxy reports."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sockjs_gateway.protocol.origins import (
    OriginPolicy,
    Verdict,
    origin_of_url,
    request_scheme,
    split_host,
)

ALLOW, DENY, UNKNOWN = Verdict.ALLOW, Verdict.DENY, Verdict.UNKNOWN
SAME_ORIGIN = OriginPolicy(())
PATTERNS = OriginPolicy(("https://*.example.com", "http://localhost:*"))


# -- no origin -----------------------------------------------------------------------------


@pytest.mark.parametrize("policy", [SAME_ORIGIN, PATTERNS, OriginPolicy(("*",))])
@pytest.mark.parametrize("origin", [None, ""])
def test_a_request_without_origin_is_unknown(policy: OriginPolicy, origin: str | None) -> None:
    assert policy.check(origin, "example.com") is UNKNOWN


# -- same origin (the default) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://example.com", "example.com", "http"),
        ("http://example.com:8080", "example.com:8080", "http"),
        ("http://127.0.0.1:5000", "127.0.0.1:5000", "http"),
        # Default ports: browsers leave them out of Origin, some clients put them in Host.
        ("http://example.com:80", "example.com", "http"),
        ("http://example.com", "example.com:80", "http"),
        ("https://example.com:443", "example.com", "https"),
        ("https://example.com", "example.com:443", "https"),
        # A TLS proxy in front: the browser says https, the backend sees Host without port.
        ("https://example.com", "example.com", "https"),
        ("https://example.com:8443", "example.com:8443", "https"),
        # IPv6 literals keep their brackets in both headers.
        ("http://[::1]:8080", "[::1]:8080", "http"),
        ("http://[::1]", "[::1]", "http"),
        ("https://[2001:db8::1]", "[2001:db8::1]:443", "https"),
        # Host names and schemes are case-insensitive, in both headers.
        ("HTTP://EXAMPLE.COM", "example.com", "http"),
        ("http://example.com", "Example.COM", "HTTP"),
        ("http://[::ABCD]:81", "[::abcd]:81", "http"),
    ],
)
def test_same_origin_is_allowed(origin: str, host: str, scheme: str) -> None:
    assert SAME_ORIGIN.check(origin, host, scheme) is ALLOW


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        # Same host and port, another scheme: another origin (RFC 6454).
        ("https://example.com:8080", "example.com:8080", "http"),
        ("http://example.com:8443", "example.com:8443", "https"),
        ("https://example.com", "example.com", "http"),
        ("http://example.com", "example.com", "https"),
        ("https://example.com:443", "example.com:443", "http"),
        # Browsers never send ws:// or wss:// origins; nothing else counts as ours.
        ("ws://example.com:8080", "example.com:8080", "http"),
        ("wss://example.com", "example.com", "https"),
        ("ftp://example.com:8080", "example.com:8080", "ftp"),
        # A port that is the other scheme's default is not left out.
        ("http://example.com:443", "example.com", "http"),
    ],
)
def test_another_scheme_is_another_origin(origin: str, host: str, scheme: str) -> None:
    assert SAME_ORIGIN.check(origin, host, scheme) is DENY


@pytest.mark.parametrize(
    ("connection", "proto", "forwarded", "scheme"),
    [
        ("http", None, None, "http"),
        ("https", None, None, "https"),
        ("http", "https", None, "https"),
        ("http", "HTTPS, http", None, "https"),  # the first hop is the browser's
        ("https", "http", None, "http"),
        ("http", "gopher", None, "http"),  # not a scheme browsers use: ignored
        ("http", None, "for=1.2.3.4;proto=https;host=x", "https"),
        ("http", None, 'proto="https", proto=http', "https"),
        ("http", None, "for=1.2.3.4", "http"),
        ("http", "", "proto=https", "https"),
    ],
)
def test_request_scheme(
    connection: str, proto: str | None, forwarded: str | None, scheme: str
) -> None:
    assert request_scheme(connection, proto, forwarded) == scheme


@pytest.mark.parametrize(
    ("authority", "parts"),
    [
        ("example.com", ("example.com", None)),
        ("Example.com:8080", ("example.com", "8080")),
        ("[::1]", ("[::1]", None)),
        ("[::1]:81", ("[::1]", "81")),
        ("[::1]x", ("[::1]x", None)),
        ("[::1", ("[::1", None)),
        ("example.com:", ("example.com:", None)),
    ],
)
def test_split_host(authority: str, parts: tuple[str, str | None]) -> None:
    assert split_host(authority) == parts


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://evil.com", "example.com"),
        ("http://example.com:8080", "example.com"),
        ("http://example.com", "example.com:8080"),
        ("http://example.com:8081", "example.com:8080"),
        ("http://sub.example.com", "example.com"),
        ("http://example.com.evil.com", "example.com"),
        ("http://[::1]:8081", "[::1]:8080"),
        ("http://[::2]", "[::1]"),
        # An https origin on its default port is not the same as a plain-http port 8080.
        ("https://example.com", "example.com:8080"),
        # Over plain http, an https page is another origin even on the same port.
        ("https://example.com:443", "example.com"),
        ("wss://example.com:443", "example.com"),
        # Pages from file:// or sandboxed iframes send the opaque origin "null".
        ("null", "example.com"),
        ("null", "null"),
        # Not an origin at all (a path, no scheme).
        ("http://example.com/page", "example.com"),
        ("example.com", "example.com"),
    ],
)
def test_other_origins_are_denied(origin: str, host: str) -> None:
    assert SAME_ORIGIN.check(origin, host) is DENY


def test_without_a_host_only_patterns_can_allow() -> None:
    assert SAME_ORIGIN.check("http://example.com", None) is DENY
    assert SAME_ORIGIN.check("http://example.com", "") is DENY
    assert PATTERNS.check("http://localhost:3000", None) is ALLOW


# -- patterns ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com",
        "https://a.b.example.com",
        "https://APP.Example.COM",
        "http://localhost:3000",
        "http://localhost:8080",
    ],
)
def test_patterns_allow_what_they_match(origin: str) -> None:
    assert PATTERNS.check(origin, "server.internal:8080") is ALLOW


@pytest.mark.parametrize(
    "origin",
    [
        "https://example.com",  # the pattern needs a subdomain
        "http://app.example.com",  # scheme differs
        "https://app.example.com:8443",  # port differs
        "https://app.example.com.evil.com",  # the whole origin must match
        "https://evilexample.com",
        "https://evil.com/.example.com",  # '*' never spans a '/'
        "http://localhost",  # the pattern needs a port
        "https://localhost:3000",
        "http://localhost.evil.com:80",
        "null",
    ],
)
def test_patterns_deny_what_they_do_not_match(origin: str) -> None:
    assert PATTERNS.check(origin, "server.internal:8080") is DENY


def test_patterns_still_allow_the_servers_own_origin() -> None:
    assert PATTERNS.check("http://server.internal:8080", "server.internal:8080") is ALLOW


def test_pattern_characters_other_than_star_are_literal() -> None:
    policy = OriginPolicy(("https://a+b.example.com", "https://x.y.com"))
    assert policy.check("https://a+b.example.com", "h") is ALLOW
    assert policy.check("https://aab.example.com", "h") is DENY
    assert policy.check("https://xzy.com", "h") is DENY  # '.' is not a regex wildcard


def test_a_pattern_may_list_null_explicitly() -> None:
    assert OriginPolicy(("null",)).check("null", "example.com") is ALLOW


# -- everything ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin", ["http://evil.com", "null", "https://x.example.com:1", "anything"]
)
def test_star_allows_every_origin(origin: str) -> None:
    policy = OriginPolicy(("*",))
    assert policy.any
    assert policy.check(origin, "example.com") is ALLOW


@given(origin=st.text(min_size=1), host=st.text())
def test_star_allows_any_text_and_others_never_crash(origin: str, host: str) -> None:
    assert OriginPolicy(("*",)).check(origin, host) is ALLOW
    assert SAME_ORIGIN.check(origin, host) in (ALLOW, DENY)
    assert PATTERNS.check(origin, host) in (ALLOW, DENY)


# -- what /info advertises -----------------------------------------------------------------


def test_advertised_origins() -> None:
    assert OriginPolicy(("*",)).advertised() == ["*:*"]
    assert OriginPolicy(("https://a.com", "*")).advertised() == ["*:*"]
    assert PATTERNS.advertised() == ["https://*.example.com", "http://localhost:*"]
    assert SAME_ORIGIN.advertised() == []


def test_same_origin_only() -> None:
    assert SAME_ORIGIN.same_origin_only
    assert not PATTERNS.same_origin_only
    assert not OriginPolicy(("*",)).same_origin_only
    assert not SAME_ORIGIN.any
    assert not PATTERNS.any


# -- the origin of a Referer ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://example.com/page.html?x=1#top", "https://example.com"),
        ("http://example.com:8080/", "http://example.com:8080"),
        ("http://example.com", "http://example.com"),
        ("HTTPS://Example.COM/Path", "https://example.com"),
        ("https://user:secret@example.com:8443/x", "https://example.com:8443"),
        ("http://[::1]:8080/index.html", "http://[::1]:8080"),
        (None, None),
        ("", None),
        ("/relative/page.html", None),
        ("example.com/page", None),
        ("about:blank", None),
        ("http://[::1/broken", None),
    ],
)
def test_origin_of_url(url: str | None, origin: str | None) -> None:
    assert origin_of_url(url) == origin


def test_a_referer_from_the_same_server_is_same_origin() -> None:
    origin = origin_of_url("http://127.0.0.1:5000/app/index.html")
    assert SAME_ORIGIN.check(origin, "127.0.0.1:5000") is ALLOW
    assert SAME_ORIGIN.check(origin_of_url("http://evil.com/x"), "127.0.0.1:5000") is DENY
