"""``ConnectionInfo``: what a session remembers of the request that opened it.

A leaf module (it imports no other part of the package), so the session, the registry,
the STOMP broker and the handler protocol can all name it without importing each other.
``sockjs_gateway.ConnectionInfo`` and ``sockjs_gateway.handler.ConnectionInfo`` are this
class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from multidict import CIMultiDictProxy, MultiMapping

__all__ = ["ConnectionInfo"]


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """An immutable snapshot of the request that opened a session (never the live request).

    Attributes:
        remote: the peer address as aiohttp reports it (``request.remote``).
        headers: the request headers.
        cookies: the request cookies.
        query: the query string parameters.
        path: the request path.
        transport: the transport that opened the session, e.g. ``"websocket"``.
    """

    remote: str | None
    headers: CIMultiDictProxy[str]
    cookies: Mapping[str, str]
    query: MultiMapping[str]
    path: str
    transport: str
