"""WebSocket sessions on a connection the server drives itself (RFC 6455).

Client frames are parsed by the sans-I/O :class:`~..protocol.rfc6455.FrameReader`; this
module is the glue between it, the transport and the session registry.

aiohttp's ``WebSocketResponse`` parses each client frame into a queue and wakes the
handler's task to read it, and writes each server frame through a coroutine. For an echo
that machinery costs more than SockJS itself. So the server answers the upgrade with its
own ``101`` and a :class:`DirectWebSocket` becomes the connection's protocol: it parses
frames in ``data_received``, hands each message to the session's registry in the same call,
and writes frames straight to the transport. It is also the session's receiver, so one
small object per connection stands in for aiohttp's response, reader, writer and queue.
Both the SockJS-framed route and the raw ``/websocket`` route run here; a raw session's
messages are the frames themselves, and its heartbeat is a WebSocket ping.

Why our own codec and not aiohttp's reader or python-websockets' sans-I/O protocol:
aiohttp's reader is private (``aiohttp._websocket``) and changed shape between 3.9 and
3.11, and websockets' protocol parses through generators and queues events, which costs
more per message than the whole SockJS echo. The hand-written reader is ~270 lines, passes
Autobahn|Testsuite (tests/server/test_autobahn.py) and keeps the WebSocket bench rows.
permessage-deflate (opt-in, ``websocket_compression``) is :mod:`..protocol.wsdeflate`,
zlib behind the same reader and writer. Only Hixie-76 runs elsewhere (:mod:`.websocket`).

Flow control, one writer: messages, pongs, pings and close frames all leave through
:meth:`DirectWebSocket._write`. When the transport's buffer passes its high-water mark
(``pause_writing``), the connection stops reading (``pause_reading``, and the frame reader
holds what it has not parsed), so a client that floods pings and never reads cannot make
the server queue pongs: at most the high-water mark plus one read (64 KiB) of them wait.
Messages sent meanwhile wait in the session's bounded queue (``max_queued_bytes``), and
the stuck-write clock (``send_time_limit``) runs until ``resume_writing``, so the
slow-consumer policy applies to a client stuck on pongs as to one stuck on messages.
Inbound: when the session's handler queue is full the connection also stops reading
until the handler catches up.

No cycles: the connection and its frame reader refer to each other while the connection
lives; ``connection_lost`` drops the reader (and with it any unfinished fragmented
message), so a closed connection's buffers are freed by reference counting alone.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .. import logs
from ..exceptions import BadPayload
from ..protocol.frames import Close, decode_messages
from ..protocol.rfc6455 import (
    INVALID_DATA,
    FrameReader,
    Unmask,
    close_frame,
    deflated_text_frame,
    text_frame,
    unmask,
    ws_close_code,
)
from ..protocol.wsdeflate import Deflate, negotiate
from .registry import CONNECTION_LOST

if TYPE_CHECKING:
    from .endpoint import Endpoint
    from .session import Session

__all__ = ["DirectWebSocket", "serve", "CLOSE_TIMEOUT"]

log = logging.getLogger("sockjs_gateway")

#: Seconds the server waits for the client's answer to its close frame before it cuts the
#: connection (aiohttp waits 10).
CLOSE_TIMEOUT = 5.0


def _c_unmask() -> Unmask:
    """aiohttp's C unmasking, which XORs in place as the reader wants; ours if it has
    moved (a private module of aiohttp)."""
    try:
        from aiohttp._websocket.helpers import websocket_mask
    except ImportError:
        return unmask
    return websocket_mask


_unmask = _c_unmask()


class _ReadBuffer(threading.local):
    """Where every connection of a thread's event loop reads into (see ``get_buffer``)."""

    def __init__(self) -> None:
        self.buffer = bytearray(64 * 1024)
        self.view = memoryview(self.buffer)


_read_buffer = _ReadBuffer()


class _Nobody:
    """The sink of :data:`_GONE`, which never calls it."""

    def on_text(self, text: str, size: int) -> None: ...

    def on_ping(self, payload: bytes) -> None: ...

    def on_close(self, code: int, reason: str) -> None: ...

    def on_error(self, code: int, reason: str) -> None: ...


#: The reader of every closed connection: stopped, holding nothing.
_GONE = FrameReader(_Nobody(), 0)
_GONE.stop()


class DirectWebSocket(asyncio.BufferedProtocol):
    """One upgraded connection: the transport's protocol and the session's receiver.

    A buffered protocol: asyncio reads into one 64 KiB buffer that every connection of
    the event loop shares (each read is parsed before the next one starts, and a partial
    frame is copied out). With plain ``data_received`` asyncio allocates 256 KiB per read,
    which glibc serves with mmap, mremap and munmap: three system calls per message.
    """

    __slots__ = (
        "_session",
        "_endpoint",
        "_transport",
        "_inner",
        "_reader",
        "_raw",
        "_held",
        "_paused",
        "_not_reading",
        "_close_sent",
        "_close_timer",
        "_ping_timer",
        "_heard",
        "_deflate",
        "_loop",
        "_buffer",
        "_view",
        "_direct",
        "done",
        "frames_direct",
    )

    def __init__(
        self,
        session: Session,
        endpoint: Endpoint,
        transport: asyncio.Transport,
        inner: Any,
        max_size: int,
        *,
        raw: bool = False,
        deflate: Deflate | None = None,
    ) -> None:
        self._session = session
        self._endpoint = endpoint
        self._transport = transport
        self._inner = inner  # aiohttp's protocol for this connection
        # A raw session's messages are the frames themselves, empty ones included.
        self._reader = FrameReader(
            self,
            max_size,
            _unmask,
            ignore_empty=not raw,
            inflate=deflate.inflate if deflate is not None else None,
        )
        self._deflate = deflate
        #: Whether ready-made (uncompressed) frames may be written: not when compressing.
        self.frames_direct = deflate is None
        self._raw = raw
        self._held = False  # the handler queue is full
        self._paused = False  # writing paused: the client stopped reading
        self._not_reading = False  # reading paused, for either reason above
        self._close_sent = False
        # write_direct may write now: frames_direct, not _paused and not _close_sent.
        self._direct = self.frames_direct
        self._close_timer: asyncio.TimerHandle | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._heard = True  # bytes came in since the last ping
        self._loop = asyncio.get_running_loop()
        # This thread's read buffer (see get_buffer), kept here: a thread-local attribute
        # costs a lookup per read.
        self._buffer = _read_buffer.buffer
        self._view = _read_buffer.view
        #: Resolved when the connection is gone.
        self.done: asyncio.Future[None] = self._loop.create_future()
        if raw:
            self._arm_ping()

    # -- asyncio protocol ------------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self._heard = True  # data_received, inlined: every message comes this way
        # A slice of the bytearray, not of the view: half the cost (callgrind).
        self._reader.feed(self._buffer[:nbytes])

    def data_received(self, data: bytes) -> None:
        self._heard = True
        self._reader.feed(data)

    def eof_received(self) -> bool:
        return False  # the client will send nothing more: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._close_timer, self._ping_timer):
            if timer is not None:
                timer.cancel()
        self._close_timer = self._ping_timer = None
        # Free a partly read frame or fragmented message now, and break the cycle between
        # this connection and its reader, so nothing waits for the cyclic GC.
        self._reader.stop()
        self._reader = _GONE
        session = self._session
        self._endpoint.registry.client_closed(session, *CONNECTION_LOST)
        if not self.done.done():
            self.done.set_result(None)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._paused = True
        self._direct = False
        self._endpoint.registry.begin_write(self._session)
        self._inner.pause_writing()
        self._follow_flow()

    def resume_writing(self) -> None:
        self._paused = False
        self._direct = self.frames_direct and not self._close_sent
        self._endpoint.registry.end_write(self._session)
        self._inner.resume_writing()
        self.wake()  # queued frames first: they may fill the buffer and pause us again
        self._follow_flow()

    # aiohttp's parser hook: bytes the client sent right behind its upgrade request.
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self.data_received(data)
        return False, b""

    def feed_eof(self) -> None:
        return None

    # -- the one writer and the one reading switch ------------------------------------------

    def _write(self, data: bytes) -> bool:
        """Every byte the server sends on this connection goes through here, and is
        counted here; False if the connection is closing (nothing written)."""
        transport = self._transport
        if transport.is_closing():
            return False
        transport.write(data)  # may call pause_writing(), which stops reading
        self._endpoint.stats.bytes_out += len(data)
        return True

    def _follow_flow(self) -> None:
        """Read only while the client reads what we write and the handler keeps up."""
        stop = self._held or self._paused
        if stop == self._not_reading:
            return
        self._not_reading = stop
        transport = self._transport
        if stop:
            self._reader.hold()  # bytes already read stay unparsed: no pong for them yet
            transport.pause_reading()
        elif not transport.is_closing():
            transport.resume_reading()
            self._reader.release()  # may hold again, from a sink call

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
        if self._transport.is_closing():
            return
        frames = machine.data_to_send(self._loop.time())
        if frames:
            encode = text_frame if self._deflate is None else self._deflated
            self._write(encode(frames[0]) if len(frames) == 1 else b"".join(map(encode, frames)))
        if closed_with is not None:
            self._send_close(closed_with)

    def _deflated(self, text: str) -> bytes:
        deflate = self._deflate
        if deflate is None:
            return text_frame(text)
        return deflated_text_frame(deflate.deflate(text.encode("utf-8")))

    def write_direct(self, frame: bytes) -> bool:
        """Write one ready-made frame now if the client is reading (for broadcasts)."""
        if not self._direct:
            return False
        return self._write(frame)

    def abort(self) -> None:
        self._transport.abort()

    async def finish(self) -> None:
        """Nothing to wait for: every write is done by the time it returns."""

    # -- what the frame reader reports ------------------------------------------------------

    def on_text(self, text: str, size: int) -> None:
        if self._raw:
            messages = [text]
        else:
            try:
                messages = decode_messages(text, allow_single=True)
            except BadPayload as error:
                self._reader.stop()
                return self.on_error(INVALID_DATA, str(error))
        session = self._session
        space = self._endpoint.registry.deliver_now(session, messages, size)
        if space is not None:
            self._held = True
            self._follow_flow()
            space.add_done_callback(self._go_on)
        return None

    def _go_on(self, _: asyncio.Future[None]) -> None:
        if self._held:
            self._held = False
            self._follow_flow()

    def on_ping(self, payload: bytes) -> None:
        if not self._close_sent:
            self._write(bytes((0x8A, len(payload))) + payload)

    def on_close(self, code: int, reason: str) -> None:
        session = self._session
        self._endpoint.registry.client_closed(session, code, reason)
        if not self._close_sent:
            self._send_close(Close(code, reason))
        self._transport.close()  # the closing handshake is complete

    def on_error(self, code: int, reason: str) -> None:
        """The client broke the protocol: close with ``code``, which its handler hears.

        The reader drops whatever the client sends next (closing at once could make the
        client's kernel drop our close frame when it gets a reset), and our side of the
        connection is shut once the close frame is out, so the client closes too.
        """
        session = self._session
        logs.protocol_close(session, code, reason)
        self._endpoint.registry.client_closed(session, code, reason)
        if not self._close_sent:
            self._send_close(Close(code, reason))
        self._held = False
        self._follow_flow()
        transport = self._transport
        if transport.can_write_eof() and not transport.is_closing():
            transport.write_eof()

    def _send_close(self, closed_with: Close) -> None:
        self._close_sent = True
        self._direct = False
        if self._transport.is_closing():
            return
        self._write(close_frame(ws_close_code(closed_with.code), closed_with.reason))
        self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, self._transport.abort)

    # -- a raw session's heartbeat ------------------------------------------------------

    def _arm_ping(self) -> None:
        delay = self._endpoint.options.heartbeat_delay
        self._ping_timer = self._loop.call_later(delay, self._ping)

    def _ping(self) -> None:
        """Every ``heartbeat_delay``: the client must have sent something (a pong will do)
        since the last ping, unless the server itself stopped reading it."""
        self._ping_timer = None
        if self._close_sent or self._transport.is_closing():
            return
        if not self._heard and not self._not_reading:
            session = self._session
            registry = self._endpoint.registry
            registry.stats.heartbeat_timeouts += 1
            log.info(
                "raw WebSocket from %s closed: no pong within %ss",
                session.info.remote,
                self._endpoint.options.heartbeat_delay,
            )
            registry.client_closed(session, 1006, "No pong")
            self._transport.abort()
            return
        self._heard = False
        self._write(b"\x89\x00")
        self._arm_ping()


async def serve(
    request: web.Request,
    endpoint: Endpoint,
    session_id: str,
    accept: str,
    principal: Any,
    *,
    raw: bool = False,
) -> web.StreamResponse:
    """Answer the upgrade and run the session until the connection is gone."""
    headers = {"Upgrade": "websocket", "Connection": "upgrade", "Sec-WebSocket-Accept": accept}
    deflate = None
    offers = request.headers.get("Sec-WebSocket-Extensions")
    if offers and endpoint.options.websocket_compression:
        negotiated = negotiate(offers)
        if negotiated is not None:
            headers["Sec-WebSocket-Extensions"], deflate = negotiated
    response = web.StreamResponse(status=101, reason="Switching Protocols", headers=headers)
    await response.prepare(request)
    transport = request.transport
    if transport is None or transport.is_closing():
        return response
    registry = endpoint.registry
    session = registry.create(
        session_id,
        endpoint.connection_info(request, "raw-websocket" if raw else "websocket"),
        websocket=True,
        raw=raw,
        principal=principal,
    )
    inner = transport.get_protocol()
    connection = DirectWebSocket(
        session,
        endpoint,
        transport,
        inner,
        endpoint.options.max_message_bytes,
        raw=raw,
        deflate=deflate,
    )
    transport.set_protocol(connection)
    registry.attach(session, connection)
    request.protocol.set_parser(connection)  # type: ignore[arg-type]  # any bytes already read
    try:
        await connection.done
    finally:
        if not connection.done.done():  # cancelled (the app is stopping): cut the connection
            transport.abort()
        registry.client_closed(session, *CONNECTION_LOST)
        registry.forget(session)
    return response
