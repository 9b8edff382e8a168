"""What an application implements, and what it learns about a connection.

A handler never learns which transport carries a session's traffic; ``ConnectionInfo``
says which one opened it, for logging and auth decisions only.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ParamSpec, Protocol, TypeVar

from multidict import CIMultiDictProxy, MultiMapping

if TYPE_CHECKING:
    from .server.session import Session

__all__ = ["Handler", "ConnectionInfo", "run_blocking"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


async def run_blocking(func: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run blocking ``func(*args, **kwargs)`` in the loop's default executor (a thread pool)
    and return its result, so a hook that must call blocking code (a database driver, a
    file, CPU-heavy work) does not stall the event loop, heartbeats or other sessions.

    Example::

        async def on_message(self, session, message):
            reply = await run_blocking(lookup_in_legacy_db, message)
            session.send(reply)
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(func, *args, **kwargs))


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
    query: MultiMapping[str]
    path: str
    transport: str
