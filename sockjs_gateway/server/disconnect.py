"""Notice at once when the client of a long-lived HTTP response goes away.

aiohttp only tells a waiting handler that its client left if the application runs with
``handler_cancellation=True``, or on the next write. A SockJS server must know at once: a
long poll whose client vanished makes the session "interrupted" (1002), and the next
request must not be told "Another connection still open". aiohttp has no public hook for
this, so while a receiver waits we put a thin proxy in front of the connection's protocol
that reports ``connection_lost`` and forwards everything else unchanged; it is taken out
again as soon as the response ends, so a kept-alive connection goes on as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

__all__ = ["watch_disconnect"]


class _LossReporter(asyncio.Protocol):
    """Forwards every protocol call to ``inner``; calls ``on_lost`` first when the
    connection is lost."""

    __slots__ = ("inner", "on_lost")

    def __init__(self, inner: asyncio.BaseProtocol, on_lost: Callable[[], None]) -> None:
        self.inner: Any = inner
        self.on_lost = on_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_lost()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self.inner.eof_received()
        return result


@contextmanager
def watch_disconnect(request: web.BaseRequest, on_lost: Callable[[], None]) -> Iterator[None]:
    """Call ``on_lost`` if the request's connection is lost inside the ``with`` block.

    If the connection is already gone, ``on_lost`` is called at once.
    """
    transport = request.transport
    if transport is None or transport.is_closing():
        on_lost()
        yield
        return
    inner = transport.get_protocol()
    reporter = _LossReporter(inner, on_lost)
    transport.set_protocol(reporter)
    try:
        yield
    finally:
        if transport.get_protocol() is reporter:
            transport.set_protocol(inner)
        reporter.on_lost = _ignore


def _ignore() -> None:
    return None
