"""The Hixie-76 WebSocket handshake and framing (draft-hixie-thewebsocketprotocol-76).

Safari 5.0 and Chrome 6 speak it, and the SockJS protocol suite checks its handshake
(``test_haproxy``: response headers must go out before the client's 8-byte key arrives,
as HAProxy forwards them). aiohttp only speaks RFC 6455, so this module answers the
handshake itself and then installs a payload parser on the connection, the same hook
aiohttp's own WebSocket uses. :class:`Hixie76Socket` offers the few calls of
``WebSocketResponse`` the session pump needs, so both run through one pump.

aiohttp's HTTP parser refuses any request carrying ``Sec-WebSocket-Key1`` (400) before a
handler sees it. :class:`LegacyWebSocketRunner`, an ``AppRunner`` the command line uses,
renames the two Hixie-76 key headers in the first bytes of each connection so the request
reaches us; it then steps out of the connection's way. Apps that embed an endpoint with
their own runner simply refuse Hixie-76 (400), which no browser of the last decade needs.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import WSMsgType, web

__all__ = [
    "is_hixie76",
    "Hixie76Socket",
    "Hixie76Message",
    "accept",
    "challenge_response",
    "LegacyWebSocketRunner",
    "InFront",
    "WrappedServer",
    "KEY1",
    "KEY2",
]

#: The names the Hixie-76 key headers reach the application under.
KEY1 = "Sec-WebSocket-Hixie76-Key1"
KEY2 = "Sec-WebSocket-Hixie76-Key2"
_KEY_HEADER = re.compile(rb"\r\nSec-WebSocket-Key([12]):", re.IGNORECASE)


def is_hixie76(request: web.BaseRequest) -> bool:
    """Whether an upgrade request is a Hixie-76 handshake."""
    headers = request.headers
    return KEY1 in headers and KEY2 in headers and "Sec-WebSocket-Key" not in headers


def _key_number(key: str) -> int | None:
    digits = "".join(c for c in key if c.isdigit())
    spaces = key.count(" ")
    if not digits or spaces == 0 or int(digits) % spaces:
        return None
    return int(digits) // spaces


def challenge_response(key1: str, key2: str, key3: bytes) -> bytes | None:
    """The 16-byte answer to a Hixie-76 challenge, or None if the keys are malformed."""
    n1, n2 = _key_number(key1), _key_number(key2)
    if n1 is None or n2 is None or n1 > 0xFFFFFFFF or n2 > 0xFFFFFFFF:
        return None
    return hashlib.md5(struct.pack(">II", n1, n2) + key3, usedforsecurity=False).digest()


@dataclass(frozen=True, slots=True)
class Hixie76Message:
    """One inbound message, shaped like aiohttp's ``WSMessage``."""

    type: WSMsgType
    data: str
    extra: str = ""


_CLOSED = Hixie76Message(WSMsgType.CLOSED, "")


class _Parser:
    """aiohttp payload parser: the 8-byte key, then ``0x00 text 0xFF`` frames."""

    def __init__(self, socket: Hixie76Socket, max_size: int) -> None:
        self._socket = socket
        self._buffer = bytearray()
        self._max_size = max_size
        self._key3_seen = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        buffer = self._buffer
        buffer += data
        if not self._key3_seen:
            if len(buffer) < 8:
                return False, b""
            self._key3_seen = True
            self._socket._on_key3(bytes(buffer[:8]))
            del buffer[:8]
        while buffer:
            if buffer[0] == 0xFF:  # closing handshake
                self._socket._on_eof()
                return True, b""
            end = buffer.find(0xFF)
            too_long = (end if end >= 0 else len(buffer)) > self._max_size
            if buffer[0] != 0x00 or too_long:
                self._socket._on_eof()
                return True, b""
            if end < 0:
                break
            text = bytes(buffer[1:end]).decode("utf-8", errors="replace")
            del buffer[: end + 1]
            self._socket._on_message(text)
        return False, b""

    def feed_eof(self) -> None:
        self._socket._on_eof()


class Hixie76Socket:
    """A Hixie-76 connection with the ``WebSocketResponse`` calls the pump uses."""

    def __init__(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        self._request = request
        self._response = response
        self._inbox: deque[Hixie76Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._key3: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.close_code: int | None = None

    # -- parser callbacks ------------------------------------------------------------

    def _on_key3(self, key3: bytes) -> None:
        if not self._key3.done():
            self._key3.set_result(key3)

    def _on_message(self, text: str) -> None:
        self._inbox.append(Hixie76Message(WSMsgType.TEXT, text))
        self._wake()

    def _on_eof(self) -> None:
        if not self._key3.done():
            self._key3.set_exception(ConnectionResetError("closed during handshake"))
        self._inbox.append(_CLOSED)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- what the pump calls ------------------------------------------------------------

    def exception(self) -> BaseException | None:
        return None

    @property
    def response(self) -> web.StreamResponse:
        """The 101 response aiohttp must get back from the request handler."""
        return self._response

    async def send_str(self, text: str) -> None:
        if self.closed:
            raise ConnectionResetError("socket closed")
        await self._response.write(b"\x00" + text.encode() + b"\xff")

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        if self.closed:
            return False
        self.closed = True
        self.close_code = code
        transport = self._request.transport
        if transport is not None and not transport.is_closing():
            transport.write(b"\xff\x00")
            transport.close()
        self._inbox.append(_CLOSED)
        self._wake()
        return True

    async def receive(self) -> Hixie76Message:
        """The next message; a ``CLOSED`` one once the connection has ended."""
        while not self._inbox:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = (
            self._inbox[0] if self._inbox[0].type is WSMsgType.CLOSED else self._inbox.popleft()
        )
        if message.type is WSMsgType.CLOSED:
            self.closed = True
            self.close_code = self.close_code or 1000
        return message


async def accept(request: web.Request, max_size: int) -> Hixie76Socket:
    """Answer a Hixie-76 handshake. The socket comes back closed if the client sent a
    malformed key or none within 10 seconds."""
    host = request.headers.get("Host", request.host)
    response = web.StreamResponse(status=101, reason="WebSocket Protocol Handshake")
    response.headers.update(
        {
            "Upgrade": "WebSocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Origin": request.headers.get("Origin", "null"),
            "Sec-WebSocket-Location": f"ws://{host}{request.path_qs}",
        }
    )
    await response.prepare(request)
    socket = Hixie76Socket(request, response)
    request.protocol.set_parser(_Parser(socket, max_size))  # type: ignore[arg-type]
    try:
        key3 = await asyncio.wait_for(socket._key3, timeout=10)
    except (ConnectionError, TimeoutError):
        await socket.close()
        return socket
    answer = challenge_response(request.headers[KEY1], request.headers[KEY2], key3)
    if answer is None:
        await socket.close()
        return socket
    await response.write(answer)
    return socket


class InFront(asyncio.Protocol):
    """A protocol in front of aiohttp's for a connection's first bytes: it forwards every
    call to ``inner`` and steps aside (``set_protocol(inner)``) once it has seen what it
    needs. Subclasses override ``data_received``; runners stack them with
    :class:`WrappedServer` (this module's, and the header deadline's in ``runner.py``)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class _FirstBytesShim(InFront):
    """Renames Hixie-76 key headers in a connection's first chunk, then leaves."""

    def data_received(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.set_protocol(self._inner)
        if b"ey1" in data or b"EY1" in data:
            data = _KEY_HEADER.sub(rb"\r\nSec-WebSocket-Hixie76-Key\1:", data)
        self._inner.data_received(data)


class WrappedServer:
    """aiohttp's server with every new connection's protocol wrapped by ``wrap``; any other
    attribute (``requests_count``, read by aiohttp's gunicorn worker) is the server's own.
    Runners that step into connections (this one, the header deadline) stack these."""

    def __init__(self, inner: Any, wrap: Callable[[Any], asyncio.Protocol]) -> None:
        self._inner = inner
        self._wrap = wrap

    def __call__(self) -> asyncio.Protocol:
        return self._wrap(self._inner())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class LegacyWebSocketRunner(web.AppRunner):
    """An ``AppRunner`` whose sites also accept Hixie-76 WebSocket handshakes."""

    @property
    def server(self) -> web.Server | None:
        inner = super().server
        if inner is None:
            return None
        return cast(web.Server, WrappedServer(inner, _FirstBytesShim))
