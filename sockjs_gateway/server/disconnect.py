"""Notice at once when the client of a long-lived response goes away, or stops reading.

aiohttp only tells a waiting handler that its client left if the application runs with
``handler_cancellation=True``, or on the next write. A SockJS server must know at once: a
long poll whose client vanished makes the session "interrupted" (1002), and the next
request must not be told "Another connection still open". aiohttp has no public hook for
this, so while a receiver waits we put a thin proxy in front of the connection's protocol
that reports ``connection_lost`` and forwards everything else unchanged; it is taken out
again as soon as the response ends, so a kept-alive connection goes on as before.

The same proxy reports the transport's flow control (``pause_writing`` when its buffer
passes the high-water mark, ``resume_writing`` when it drained), which lets a WebSocket
receiver write frames without awaiting anything and still know when its client has
stopped reading.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from aiohttp import web

__all__ = ["watch_disconnect"]


def _ignore() -> None:
    return None


class _LossReporter(asyncio.Protocol):
    """Forwards every protocol call to ``inner``; calls ``on_lost`` first when the
    connection is lost, and ``on_pause``/``on_resume`` after flow-control changes.

    It is its own context manager (one small object per waiting response; a generator
    based one cost three more)."""

    __slots__ = ("inner", "on_lost", "on_pause", "on_resume", "_transport")

    def __init__(
        self,
        transport: asyncio.Transport | None,
        on_lost: Callable[[], None],
        on_pause: Callable[[], None],
        on_resume: Callable[[], None],
    ) -> None:
        self._transport = transport
        self.inner: Any = None
        self.on_lost = on_lost
        self.on_pause = on_pause
        self.on_resume = on_resume

    def __enter__(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            self._transport = None
            self.on_lost()
            return
        self.inner = transport.get_protocol()
        transport.set_protocol(self)

    def __exit__(self, *_: object) -> None:
        transport = self._transport
        if transport is not None and transport.get_protocol() is self:
            transport.set_protocol(self.inner)
        self.on_lost = self.on_pause = self.on_resume = _ignore

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_lost()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()
        self.on_pause()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
        self.on_resume()

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self.inner.eof_received()
        return result


def watch_disconnect(
    request: web.BaseRequest,
    on_lost: Callable[[], None],
    *,
    on_pause: Callable[[], None] = _ignore,
    on_resume: Callable[[], None] = _ignore,
) -> AbstractContextManager[None]:
    """Call ``on_lost`` if the request's connection is lost inside the ``with`` block
    (at once if it is already gone), and ``on_pause``/``on_resume`` when the transport's
    write buffer passes its high-water mark or drains below the low one.
    """
    return _LossReporter(request.transport, on_lost, on_pause, on_resume)
