"""Session-less replies and the headers every SockJS server writes the same way."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockjs_gateway.protocol.replies import (
    ONE_YEAR,
    cache_forever,
    cors_headers,
    etag_matches,
    http_date,
    iframe_page,
    info_body,
    preflight_headers,
    session_cookie,
)

HTTP_DATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" \d{4} \d\d:\d\d:\d\d GMT"
)
SOCKJS_URL = "https://cdn.example/sockjs-1.6.1.min.js"


def assert_http_date(value: str, timestamp: float) -> None:
    """``value`` is an RFC 7231 IMF-fixdate for ``timestamp`` (to the second)."""
    assert HTTP_DATE.fullmatch(value), value
    parsed = parsedate_to_datetime(value)
    assert parsed.tzinfo is not None
    assert parsed == datetime.fromtimestamp(int(timestamp), UTC)


class ScriptSources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and any(name == "src" for name, _ in attrs):
            self.sources.append(dict(attrs)["src"])


def script_sources(body: str) -> list[str | None]:
    parser = ScriptSources()
    parser.feed(body)
    parser.close()
    return parser.sources


# -- /info and the iframe ------------------------------------------------------------


@pytest.mark.parametrize(
    ("websocket", "cookie_needed", "origins", "entropy"),
    [(True, False, ["*:*"], 0), (False, True, [], 4294967295)],
)
def test_info_body(websocket: bool, cookie_needed: bool, origins: list[str], entropy: int) -> None:
    body = info_body(
        websocket=websocket, cookie_needed=cookie_needed, origins=origins, entropy=entropy
    )
    assert json.loads(body) == {
        "websocket": websocket,
        "cookie_needed": cookie_needed,
        "origins": origins,
        "entropy": entropy,
    }


@pytest.mark.parametrize(
    "url",
    [
        SOCKJS_URL,
        "/static/sockjs.js?a=1&b=2",
        'https://x/"><script>alert(1)</script>',
        "https://x/a&amp;b",
    ],
)
def test_iframe_page_loads_sockjs_url(url: str) -> None:
    body, _ = iframe_page(url)
    assert script_sources(body) == [url]
    assert "SockJS.bootstrap_iframe();" in body
    assert body.lstrip().lower().startswith("<!doctype html>")


def test_iframe_page_escapes_url_in_attribute() -> None:
    body, _ = iframe_page('/s.js?a=1&b="2"')
    assert '<script src="/s.js?a=1&amp;b=&quot;2&quot;"></script>' in body


def test_iframe_etag_is_quoted_stable_and_url_specific() -> None:
    body, etag = iframe_page(SOCKJS_URL)
    assert re.fullmatch(r'"[^"]+"', etag)
    assert iframe_page(SOCKJS_URL) == (body, etag)
    assert iframe_page(SOCKJS_URL + "?v=2")[1] != etag


# -- caching -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ('"abc"', True),
        ('W/"abc"', True),
        ("*", True),
        ('"x", "abc"', True),
        ('"x",W/"abc" , "y"', True),
        ('"x", *', True),
        (None, False),
        ("", False),
        ('"abd"', False),
        ("abc", False),
        ('"abc"x', False),
        ('"x", "y"', False),
        ('"ab", "c"', False),
        ('w/"abc"x', False),
    ],
)
def test_etag_matches(header: str | None, matches: bool) -> None:
    assert etag_matches(header, '"abc"') is matches


def test_etag_matches_the_iframe_etag() -> None:
    _, etag = iframe_page(SOCKJS_URL)
    assert etag_matches(etag, etag)
    assert not etag_matches(iframe_page(SOCKJS_URL + "?v=2")[1], etag)


@pytest.mark.parametrize("timestamp", [0.0, 1_700_000_000.75, 1_795_000_000.0, 4_102_444_800.0])
def test_http_date(timestamp: float) -> None:
    assert_http_date(http_date(timestamp), timestamp)


def test_http_date_example() -> None:
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"  # RFC 7231's example


def test_cache_forever() -> None:
    now = 1_700_000_000.0
    headers = dict(cache_forever(now))
    assert headers.keys() == {"Cache-Control", "Expires"}
    directives = {d.strip() for d in headers["Cache-Control"].split(",")}
    assert directives == {"public", "max-age=31536000"}
    assert_http_date(headers["Expires"], now + 31536000)
    assert ONE_YEAR == 31536000


def test_preflight_headers() -> None:
    headers = dict(preflight_headers("OPTIONS, POST", 1_700_000_000.0))
    assert headers["Access-Control-Max-Age"] == "31536000"
    assert headers["Access-Control-Allow-Methods"] == "OPTIONS, POST"
    assert headers["Cache-Control"] == "public, max-age=31536000"
    assert_http_date(headers["Expires"], 1_700_000_000.0 + ONE_YEAR)


# -- CORS --------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", ["http://x", "https://example.com:8443", "null"])
def test_cors_with_origin_echoes_it_with_credentials(origin: str) -> None:
    assert cors_headers(origin, None) == [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Credentials", "true"),
        ("Vary", "Origin"),
    ]


@pytest.mark.parametrize("origin", [None, ""])
def test_cors_without_origin_is_star_without_credentials(origin: str | None) -> None:
    headers = cors_headers(origin, None)
    assert headers == [("Access-Control-Allow-Origin", "*")]
    assert "Access-Control-Allow-Credentials" not in dict(headers)


@pytest.mark.parametrize("origin", [None, "http://x"])
def test_cors_requested_headers_echoed_only_when_non_empty(origin: str | None) -> None:
    assert dict(cors_headers(origin, "a, b"))["Access-Control-Allow-Headers"] == "a, b"
    for requested in (None, ""):
        assert "Access-Control-Allow-Headers" not in dict(cors_headers(origin, requested))


# -- JSESSIONID --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "value"),
    [
        (None, "dummy"),
        ("", "dummy"),
        ("abc", "abc"),
        ("A1.b-c_d!#$&'()*+/:<=>?@[]^`{|}~", "A1.b-c_d!#$&'()*+/:<=>?@[]^`{|}~"),
        ("x" * 256, "x" * 256),
        ("x" * 257, "dummy"),
        ("a;b", "dummy"),
        ("a b", "dummy"),
        ("a,b", "dummy"),
        ('"a"', "dummy"),
        ("a\\b", "dummy"),
        ("a\r\nSet-Cookie: evil=1", "dummy"),
        ("caf\u00e9", "dummy"),
        ("\x7f", "dummy"),
    ],
)
def test_session_cookie(current: str | None, value: str) -> None:
    assert session_cookie(current) == ("Set-Cookie", f"JSESSIONID={value}; Path=/")


COOKIE_OCTETS = "".join(
    chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\'
)  # RFC 6265 cookie-octet


@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(codec=None, exclude_categories=())) | st.text(COOKIE_OCTETS))
def test_session_cookie_only_echoes_safe_values(current: str) -> None:
    name, header = session_cookie(current)
    assert name == "Set-Cookie"
    safe = 1 <= len(current) <= 256 and all(c in COOKIE_OCTETS for c in current)
    assert header == f"JSESSIONID={current if safe else 'dummy'}; Path=/"
