"""Renders the session-less replies of :mod:`sockjs_gateway.protocol.replies` as aiohttp
responses: greeting, ``/info``, the iframe page, OPTIONS, and plain-text errors."""

from __future__ import annotations

import secrets
import time

from aiohttp import web

from ..protocol import replies
from ..protocol.replies import TEXT_PLAIN

__all__ = ["text_response", "greeting", "info", "iframe", "preflight", "method_not_allowed"]


def text_response(status: int, text: str, *, close: bool = False) -> web.Response:
    """A ``text/plain; charset=UTF-8`` answer; ``close`` ends the connection after it."""
    headers = [("Content-Type", TEXT_PLAIN)]
    if close:
        headers.append(("Connection", "close"))
    return web.Response(status=status, body=text.encode(), headers=headers)


def method_not_allowed(allow: str) -> web.Response:
    """405 with an ``Allow`` header and no body (what the protocol suite expects)."""
    return web.Response(status=405, headers={"Allow": allow})


def greeting() -> web.Response:
    """``GET /``: the greeting."""
    return text_response(200, replies.GREETING)


def info(
    request: web.BaseRequest, *, websocket: bool, cookie_needed: bool, origins: list[str]
) -> web.Response:
    """``GET /info``: capabilities, never cached, with fresh entropy from ``secrets``."""
    body = replies.info_body(
        websocket=websocket,
        cookie_needed=cookie_needed,
        origins=origins,
        entropy=secrets.randbits(32),
    )
    headers = [
        ("Content-Type", "application/json; charset=UTF-8"),
        *replies.NO_CACHE,
        *replies.cors_headers(
            request.headers.get("Origin"),
            request.headers.get("Access-Control-Request-Headers"),
        ),
    ]
    return web.Response(body=body.encode(), headers=headers)


def preflight(request: web.BaseRequest, methods: str) -> web.Response:
    """``OPTIONS``: 204, cacheable for a year, with the CORS grant."""
    headers = [
        *replies.preflight_headers(methods, time.time()),
        *replies.cors_headers(
            request.headers.get("Origin"),
            request.headers.get("Access-Control-Request-Headers"),
        ),
    ]
    return web.Response(status=204, headers=headers)


def iframe(request: web.BaseRequest, page: str, etag: str) -> web.Response:
    """``GET /iframe*.html``: the page, strongly cached; 304 when If-None-Match matches."""
    if replies.etag_matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers={"ETag": etag})
    headers = [
        ("Content-Type", "text/html; charset=UTF-8"),
        ("ETag", etag),
        *replies.cache_forever(time.time()),
    ]
    return web.Response(body=page.encode(), headers=headers)
