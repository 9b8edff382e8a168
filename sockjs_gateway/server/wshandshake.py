"""The server's side of the RFC 6455 opening handshake (section 4.2): is the request a
valid one, and the ``Sec-WebSocket-Accept`` that proves the server read it."""

from __future__ import annotations

import base64
import hashlib

from aiohttp import web

__all__ = ["handshake_problem", "accept_value"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def handshake_problem(request: web.BaseRequest) -> str | None:
    """Why an upgrade request is not a valid RFC 6455 handshake (the 400's text), or None.
    Versions 7 and 8 (the last drafts, framed as 13) are taken, as aiohttp takes them."""
    headers = request.headers
    version = headers.get("Sec-WebSocket-Version", "")
    if version not in ("13", "8", "7"):
        return f"Unsupported version: {version}"
    key = headers.get("Sec-WebSocket-Key", "")
    try:
        if len(base64.b64decode(key, validate=True)) == 16:
            return None
    except ValueError:
        pass
    return f"Handshake error: {key!r}"


def accept_value(request: web.BaseRequest) -> str:
    """``Sec-WebSocket-Accept`` for a request :func:`handshake_problem` has passed."""
    key = request.headers["Sec-WebSocket-Key"]
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
