r"""The ``AppRunner``\ s the command line and the gunicorn worker use: Hixie-76 handshakes,
a deadline for a request's headers, and the shutdown grace.

A client that opens a connection and sends its headers one byte at a time (slowloris)
holds a socket and a buffer forever unless something times it out. aiohttp's
``keepalive_timeout`` closes a connection whose *next* request's headers are not complete
that long after the previous response, but before aiohttp 3.14 nothing watched the first
request, and its default (3630 s; 75 s under ``web.run_app``) is far too long. So:

* :class:`HeaderTimeoutRunner` closes a connection whose first request's headers are not
  complete within ``header_timeout`` seconds of its opening. It watches the bytes until the
  blank line that ends the headers, then steps out of the connection (``set_protocol``),
  so it costs nothing afterwards;
* and it sets ``keepalive_timeout`` to the same value unless told otherwise, which bounds
  every later request's headers (and idle keep-alive connections) the same way.

Request bodies are not covered: each handler reads its body under its own limits.

:class:`GracefulRunner` adds the shutdown grace. aiohttp's ``runner.cleanup()`` stops the
listener first and only then runs the app's ``on_shutdown`` hooks, where every session is
told 1001 "Going away". A streaming or WebSocket client hears it on its open connection,
but a polling client is usually between two polls: its next poll finds no listener and it
reports 1006. So this runner runs :func:`~sockjs_gateway.server.endpoint.drain` (close
every session with 1001, keep answering for the endpoints' ``shutdown_grace``) before it
stops anything.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiohttp import web

from ..logs import refusal
from .endpoint import drain
from .hixie76 import InFront, LegacyWebSocketRunner, WrappedServer

__all__ = ["HeaderTimeoutRunner", "GatewayRunner", "GracefulRunner", "HEADER_TIMEOUT"]

#: Seconds a client has to send a request's headers (Apache's ``RequestReadTimeout``
#: allows 20-40; browsers send theirs in one packet).
HEADER_TIMEOUT = 10.0


class _HeaderDeadline(InFront):
    """Passes a connection's bytes to aiohttp's protocol; closes the connection if no
    complete header block has arrived by the deadline."""

    def __init__(self, inner: Any, timeout: float) -> None:
        super().__init__(inner)
        self._timeout = timeout
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._timer = asyncio.get_running_loop().call_later(self._timeout, self._expired)
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        window = self._tail + data
        if b"\r\n\r\n" in window or b"\n\n" in window:
            # Step out before aiohttp sees the request: its handler may replace the
            # protocol itself (a WebSocket upgrade), and must not be undone here.
            self._cancel()
            if self._transport is not None:
                self._transport.set_protocol(self._inner)
        else:
            self._tail = window[-3:]
        self._inner.data_received(data)

    def _expired(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        refusal(
            "header-timeout",
            "Connection from %s closed: request headers not complete within %g s",
            transport.get_extra_info("peername"),
            self._timeout,
        )
        transport.abort()  # nothing useful to flush; connection_lost follows

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)


class HeaderTimeoutRunner(web.AppRunner):
    """An ``AppRunner`` whose connections must send each request's headers within
    ``header_timeout`` seconds (see the module docstring). Other keyword arguments go to
    ``web.AppRunner``; ``keepalive_timeout`` defaults to ``header_timeout``."""

    def __init__(
        self, app: web.Application, *, header_timeout: float = HEADER_TIMEOUT, **kwargs: Any
    ) -> None:
        if header_timeout <= 0:
            raise ValueError("header_timeout must be positive")
        kwargs.setdefault("keepalive_timeout", header_timeout)
        super().__init__(app, **kwargs)
        self.header_timeout = header_timeout

    @property
    def server(self) -> web.Server | None:
        inner = super().server
        if inner is None:
            return None
        timeout = self.header_timeout
        return cast(web.Server, WrappedServer(inner, lambda proto: _HeaderDeadline(proto, timeout)))


class GatewayRunner(LegacyWebSocketRunner, HeaderTimeoutRunner):
    """What ``python -m sockjs_gateway`` runs: Hixie-76 handshakes are accepted (its
    first-bytes shim wraps the header deadline, which wraps aiohttp's protocol)."""


class GracefulRunner(GatewayRunner):
    """A :class:`GatewayRunner` that lets every client hear 1001 before the listener
    closes (see the module docstring)."""

    async def cleanup(self) -> None:
        """Drain every endpoint of the app (once), then clean up as aiohttp does."""
        if self.server is not None:  # set up, and not cleaned up yet
            await drain(self.app)
        await super().cleanup()
