"""Pure builders for the replies that carry no session: greeting, ``/info``, iframe page,
and the headers every SockJS server writes the same way (CORS, JSESSIONID, caching).

Headers are lists of ``(name, value)`` pairs; the adapter turns them into a response.
"""

from __future__ import annotations

import hashlib
import json
import re
from email.utils import formatdate

__all__ = [
    "GREETING",
    "TEXT_PLAIN",
    "ONE_YEAR",
    "NO_CACHE",
    "Headers",
    "http_date",
    "info_body",
    "iframe_page",
    "etag_matches",
    "cache_forever",
    "cors_headers",
    "preflight_headers",
    "session_cookie",
]

Headers = list[tuple[str, str]]

GREETING = "Welcome to SockJS!\n"
TEXT_PLAIN = "text/plain; charset=UTF-8"
ONE_YEAR = 31536000  # seconds: what the protocol suite calls "best" for cacheable replies

#: For every reply that must never be cached (GET transports, POSTs that iOS 6 caches).
NO_CACHE: Headers = [
    ("Cache-Control", "no-store, no-cache, no-transform, must-revalidate, max-age=0")
]

_COOKIE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{1,256}")

_IFRAME = """<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="%s"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"""


def http_date(timestamp: float) -> str:
    """An RFC 7231 HTTP-date, e.g. ``Wed, 25 Nov 2026 13:39:21 GMT``."""
    return formatdate(timestamp, usegmt=True)


def info_body(*, websocket: bool, cookie_needed: bool, origins: list[str], entropy: int) -> str:
    """The JSON document ``/info`` answers with (entropy must come from ``secrets``)."""
    return json.dumps(
        {
            "websocket": websocket,
            "cookie_needed": cookie_needed,
            "origins": origins,
            "entropy": entropy,
        },
        separators=(",", ":"),
    )


def iframe_page(sockjs_url: str) -> tuple[str, str]:
    """The iframe page that loads sockjs-client from ``sockjs_url``, and its quoted ETag."""
    body = _IFRAME % sockjs_url.replace("&", "&amp;").replace('"', "&quot;")
    return body, '"' + hashlib.md5(body.encode(), usedforsecurity=False).hexdigest() + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (or is ``*``)."""
    if not if_none_match:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags or ("W/" + etag) in tags


def cache_forever(now: float) -> Headers:
    """Headers that let browsers and proxies keep a reply for a year."""
    return [
        ("Cache-Control", f"public, max-age={ONE_YEAR}"),
        ("Expires", http_date(now + ONE_YEAR)),
    ]


def cors_headers(origin: str | None, request_headers: str | None) -> Headers:
    """CORS grant for a request from ``origin``.

    A request that names its origin (``null`` included: pages from ``file://``) gets it
    echoed with credentials allowed, so that JSESSIONID flies; one without gets ``*`` and
    no credentials. Requested headers are echoed back.
    """
    if origin:
        headers = [
            ("Access-Control-Allow-Origin", origin),
            ("Access-Control-Allow-Credentials", "true"),
            ("Vary", "Origin"),
        ]
    else:
        headers = [("Access-Control-Allow-Origin", "*")]
    if request_headers:
        headers.append(("Access-Control-Allow-Headers", request_headers))
    return headers


def preflight_headers(methods: str, now: float) -> Headers:
    """The cacheable part of an OPTIONS answer; add :func:`cors_headers` to it."""
    return [
        *cache_forever(now),
        ("Access-Control-Max-Age", str(ONE_YEAR)),
        ("Access-Control-Allow-Methods", methods),
    ]


def session_cookie(current: str | None) -> tuple[str, str]:
    """``Set-Cookie`` for load-balancer stickiness: the client's JSESSIONID, or ``dummy``."""
    value = current if current and _COOKIE_VALUE.fullmatch(current) else "dummy"
    return ("Set-Cookie", f"JSESSIONID={value}; Path=/")
