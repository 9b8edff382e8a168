"""What an application implements, and what it learns about a connection.

A handler never learns which transport carries a session's traffic; ``ConnectionInfo``
says which one opened it, for logging and auth decisions only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from multidict import CIMultiDictProxy, MultiDictProxy

if TYPE_CHECKING:
    from .server.session import Session

__all__ = ["Handler", "ConnectionInfo"]


class Handler(Protocol):
    """The three hooks of a SockJS application. Each runs in its session's own order:
    ``on_open`` first, then ``on_message`` once per message, then ``on_close`` once.

    Hooks may call ``session.send`` and ``session.close`` freely; they must not block the
    event loop (run blocking work in an executor).
    """

    async def on_open(self, session: Session) -> None:
        """The session is open; ``session.send`` works from now on."""

    async def on_message(self, session: Session, message: str) -> None:
        """The client sent ``message``."""

    async def on_close(self, session: Session, code: int, reason: str) -> None:
        """The session is closed (by either side, by a timeout, or by a lost connection)."""


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
    query: MultiDictProxy[str]
    path: str
    transport: str
