"""SockJS-framed WebSocket sessions on a connection the server drives itself (RFC 6455).

aiohttp's ``WebSocketResponse`` parses each client frame into a queue and wakes the
handler's task to read it, and writes each server frame through a coroutine. For an echo
that machinery costs more than SockJS itself. So for the common case (a SockJS-framed
session, no permessage-deflate) the server answers the upgrade with its own ``101`` and a
:class:`DirectWebSocket` becomes the connection's protocol: it parses frames in
``data_received``, hands each message to the session's registry in the same call, and
writes frames straight to the transport. It is also the session's receiver, so one small
object per connection stands in for aiohttp's response, reader, writer and queue.

aiohttp's own protocol object stays behind it and still hears ``connection_lost`` and the
flow-control calls, so aiohttp's bookkeeping (open connections, shutdown) goes on as for
any upgraded connection. Raw ``/websocket``, permessage-deflate and Hixie-76 keep aiohttp's
``WebSocketResponse`` (:mod:`.websocket`).

Inbound backpressure: when the session's handler queue is full the connection stops
reading (``pause_reading``) until the handler catches up. Outbound: when the transport's
buffer passes its high-water mark, frames wait in the session's bounded queue and the
stuck-write clock runs until ``resume_writing``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..exceptions import BadPayload
from ..protocol.frames import Close, decode_messages
from ..protocol.state import SessionState
from .wsframe import text_frame

if TYPE_CHECKING:
    from .endpoint import Endpoint
    from .session import Session

__all__ = ["DirectWebSocket", "serve", "accept_value", "ws_close_code", "CLOSE_TIMEOUT"]

#: Seconds the server waits for the client's answer to its close frame before it cuts the
#: connection (aiohttp waits 10).
CLOSE_TIMEOUT = 5.0

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_LOST = (1006, "Connection lost")
_BAD_UTF8 = "Invalid UTF-8 text message"
# Codes a client may put in its close frame (RFC 6455 7.4.1, and 3000-4999).
_CLIENT_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013})
_SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})

_TEXT, _BINARY, _CONTINUATION = 0x1, 0x2, 0x0
_CLOSE, _PING, _PONG = 0x8, 0x9, 0xA


def accept_value(request: web.BaseRequest) -> str | None:
    """``Sec-WebSocket-Accept`` for a valid RFC 6455 upgrade request, else None (aiohttp's
    ``WebSocketResponse`` then answers it, with its own 400s)."""
    headers = request.headers
    if request.method != "GET" or headers.get("Sec-WebSocket-Version") != "13":
        return None
    key = headers.get("Sec-WebSocket-Key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except ValueError:
        return None
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def ws_close_code(code: int) -> int:
    """The code a close frame may carry for a session closed with ``code``: RFC 6455's
    codes and 3000-4999; SockJS-only codes such as 2010 are told in the ``c`` frame, and
    the socket then ends with 1000."""
    return code if code in _SENDABLE_CODES or 3000 <= code <= 4999 else 1000


def _unmask(payload: bytes, mask: bytes) -> bytes:
    # XOR as one big integer: C speed without a per-byte loop.
    size = len(payload)
    key = (mask * (size // 4 + 1))[:size]
    value = int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")
    return value.to_bytes(size, "little")


def _close_frame(code: int, reason: str) -> bytes:
    payload = code.to_bytes(2, "big") + reason.encode()[:123]  # a close frame holds 125
    return bytes((0x88, len(payload))) + payload


class _ReadBuffer(threading.local):
    """Where every connection of a thread's event loop reads into (see ``get_buffer``)."""

    def __init__(self) -> None:
        self.view = memoryview(bytearray(64 * 1024))


_read_buffer = _ReadBuffer()


class DirectWebSocket(asyncio.BufferedProtocol):
    """One upgraded connection: the transport's protocol and the session's receiver.

    A buffered protocol: asyncio reads into one 64 KiB buffer that every connection of
    the event loop shares (each read is parsed before the next one starts, and a partial
    frame is copied out). With plain ``data_received`` asyncio allocates 256 KiB per read,
    which glibc serves with mmap, mremap and munmap: three system calls per message.
    """

    __slots__ = (
        "_session",
        "_transport",
        "_inner",
        "_max",
        "_tail",
        "_need",
        "_fragments",
        "_fragments_size",
        "_held",
        "_paused",
        "_close_sent",
        "_close_timer",
        "_discard",
        "_loop",
        "done",
    )

    def __init__(
        self, session: Session, transport: asyncio.Transport, inner: Any, max_size: int
    ) -> None:
        self._session = session
        self._transport = transport
        self._inner = inner  # aiohttp's protocol for this connection
        self._max = max_size
        self._tail: bytearray | None = None  # bytes of a frame not complete yet
        self._need = 0  # how many bytes _tail must hold before parsing goes on
        self._fragments: list[bytes] | None = None  # a fragmented text message so far
        self._fragments_size = 0
        self._held = False  # reading paused: the handler queue is full
        self._paused = False  # writing paused: the client stopped reading
        self._close_sent = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._discard = False  # the client broke the protocol: its bytes are dropped
        self._loop = asyncio.get_running_loop()
        #: Resolved when the connection is gone.
        self.done: asyncio.Future[None] = self._loop.create_future()

    # -- asyncio protocol ------------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return _read_buffer.view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(_read_buffer.view[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        if self._discard:
            return
        tail = self._tail
        if tail is not None:
            tail += data
            if self._held or len(tail) < self._need:
                return
            self._tail = None
            data = bytes(tail)
        self._parse(data)

    def eof_received(self) -> bool:
        return False  # the client will send nothing more: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        session = self._session
        if session.machine.state is not SessionState.CLOSED:
            session.endpoint.registry.client_closed(session, *_LOST)
        if not self.done.done():
            self.done.set_result(None)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._paused = True
        self._session.endpoint.registry.begin_write(self._session)
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._paused = False
        self._session.endpoint.registry.end_write(self._session, 0)
        self._inner.resume_writing()
        self.wake()

    # aiohttp's parser hook: bytes the client sent right behind its upgrade request.
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self.data_received(data)
        return False, b""

    def feed_eof(self) -> None:
        return None

    # -- receiver --------------------------------------------------------------------------

    def wake(self) -> None:
        """Write what the session has queued; after a close, the close frame too."""
        if self._close_sent:
            return
        session = self._session
        machine = session.machine
        closed_with = machine.closed_with
        if self._paused and closed_with is None:
            return  # resume_writing() writes them
        transport = self._transport
        if transport.is_closing():
            return
        frames = machine.take_frames(self._loop.time())
        if frames:
            data = text_frame(frames[0]) if len(frames) == 1 else b"".join(map(text_frame, frames))
            transport.write(data)
            session.endpoint.stats.bytes_out += len(data)
        if closed_with is not None:
            self._send_close(closed_with)

    frames_direct = True

    def write_direct(self, frame: bytes) -> bool:
        """Write one ready-made frame now if the client is reading (for broadcasts)."""
        if self._paused or self._close_sent or self._transport.is_closing():
            return False
        self._transport.write(frame)
        self._session.endpoint.stats.bytes_out += len(frame)
        return True

    def abort(self) -> None:
        self._transport.abort()

    async def finish(self) -> None:
        """Nothing to wait for: every write is done by the time it returns."""

    # -- reading ---------------------------------------------------------------------------

    def _parse(self, data: bytes) -> None:
        pos = 0
        size = len(data)
        need = 0
        while pos < size:
            if self._held or self._discard or self._transport.is_closing():
                break
            if size - pos < 2:
                need = 2
                break
            first = data[pos]
            second = data[pos + 1]
            length = second & 0x7F
            if length < 126:
                start = pos + 6
            elif length == 126:
                if size - pos < 4:
                    need = 4
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 8
            else:
                if size - pos < 10:
                    need = 10
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 14
            if not second & 0x80:
                return self._fail(1002, "Client frames must be masked.")
            if first & 0x08:
                if length > 125:
                    return self._fail(1002, "Control frames must be under 126 bytes.")
            elif length + self._fragments_size > self._max:
                return self._fail(1009, f"Message size {length} exceeds limit {self._max}")
            end = start + length
            if end > size:
                need = end - pos
                break
            payload = _unmask(data[start:end], data[start - 4 : start]) if length else b""
            pos = end
            if first == 0x81 and self._fragments is None:  # the usual case: a whole text frame
                self._text(payload)
            else:
                self._frame(first, payload)
        if pos < size and not self._discard and not self._transport.is_closing():
            self._tail = bytearray(data[pos:] if pos else data)
            self._need = need

    def _frame(self, first: int, payload: bytes) -> None:
        if first & 0x70:
            return self._fail(1002, "Reserved bits set without an extension.")
        opcode = first & 0x0F
        fin = first & 0x80
        if opcode >= 0x8:
            if not fin:
                return self._fail(1002, "Control frames must not be fragmented.")
            if opcode == _PING:
                if not self._close_sent:
                    self._transport.write(bytes((0x8A, len(payload))) + payload)
            elif opcode == _CLOSE:
                self._closed_by_client(payload)
            elif opcode != _PONG:
                self._fail(1002, f"Unknown opcode {opcode}.")
            return None
        if opcode == _BINARY:
            return self._fail(1003, "Text frames only.")
        if opcode == _TEXT:
            if self._fragments is not None:
                return self._fail(1002, "A new message began inside a fragmented one.")
            if fin:
                return self._text(payload)
            self._fragments = [payload]
            self._fragments_size = len(payload)
        elif opcode == _CONTINUATION:
            if self._fragments is None:
                return self._fail(1002, "Continuation frame without a message.")
            self._fragments.append(payload)
            self._fragments_size += len(payload)
            if fin:
                whole = b"".join(self._fragments)
                self._fragments = None
                self._fragments_size = 0
                self._text(whole)
        else:
            self._fail(1002, f"Unknown opcode {opcode}.")
        return None

    def _text(self, payload: bytes) -> None:
        if not payload:
            return  # the protocol: empty frames are ignored
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            return self._fail(1007, _BAD_UTF8)
        try:
            messages = decode_messages(text, allow_single=True)
        except BadPayload as error:
            return self._fail(1007, str(error))
        session = self._session
        registry = session.endpoint.registry
        registry.deliver_now(session, messages, len(payload))
        space = registry.wait_for_space(session)
        if space is not None:
            self._held = True
            self._transport.pause_reading()
            space.add_done_callback(self._go_on)
        return None

    def _go_on(self, _: asyncio.Future[None]) -> None:
        if not self._held:
            return
        self._held = False
        transport = self._transport
        if transport.is_closing():
            return
        transport.resume_reading()
        tail = self._tail
        if tail is not None and len(tail) >= self._need:
            self._tail = None
            self._parse(bytes(tail))

    def _closed_by_client(self, payload: bytes) -> None:
        code, reason = 1005, ""
        if len(payload) == 1:
            return self._fail(1002, "Invalid close frame.")
        if payload:
            code = int.from_bytes(payload[:2], "big")
            if code not in _CLIENT_CLOSE_CODES and not 3000 <= code <= 4999:
                return self._fail(1002, f"Invalid close code: {code}")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                return self._fail(1007, _BAD_UTF8)
        session = self._session
        if session.machine.state is not SessionState.CLOSED:
            session.endpoint.registry.client_closed(session, code, reason)
        if not self._close_sent:
            self._send_close(Close(code, reason))
        self._transport.close()  # the closing handshake is complete
        return None

    def _fail(self, code: int, reason: str) -> None:
        """The client broke the protocol: close with ``code``, which its handler hears.

        Whatever the client sends next is read and dropped (closing at once could make
        the client's kernel drop our close frame when it gets a reset), and our side of
        the connection is shut once the close frame is out, so the client closes too.
        """
        session = self._session
        if session.machine.state is not SessionState.CLOSED:
            session.endpoint.registry.client_closed(session, code, reason)
        if not self._close_sent:
            self._send_close(Close(code, reason))
        self._discard = True
        self._tail = self._fragments = None
        transport = self._transport
        if self._held:
            self._held = False
            transport.resume_reading()
        if transport.can_write_eof() and not transport.is_closing():
            transport.write_eof()

    def _send_close(self, closed_with: Close) -> None:
        self._close_sent = True
        transport = self._transport
        if transport.is_closing():
            return
        transport.write(_close_frame(ws_close_code(closed_with.code), closed_with.reason))
        self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, transport.abort)


async def serve(
    request: web.Request, endpoint: Endpoint, session_id: str, accept: str, principal: Any
) -> web.StreamResponse:
    """Answer the upgrade and run the session until the connection is gone."""
    response = web.StreamResponse(
        status=101,
        reason="Switching Protocols",
        headers={"Upgrade": "websocket", "Connection": "upgrade", "Sec-WebSocket-Accept": accept},
    )
    await response.prepare(request)
    transport = request.transport
    if transport is None or transport.is_closing():
        return response
    registry = endpoint.registry
    session = registry.create(
        session_id,
        endpoint.connection_info(request, "websocket"),
        websocket=True,
        principal=principal,
    )
    inner = transport.get_protocol()
    connection = DirectWebSocket(session, transport, inner, endpoint.options.max_message_bytes)
    transport.set_protocol(connection)
    registry.attach(session, connection)
    request.protocol.set_parser(connection)  # type: ignore[arg-type]  # any bytes already read
    try:
        await connection.done
    finally:
        if not connection.done.done():  # cancelled (the app is stopping): cut the connection
            transport.abort()
        if session.machine.state is not SessionState.CLOSED:
            registry.client_closed(session, *_LOST)
        registry.forget(session)
    return response
