"""The WebSocket routes: SockJS-framed (``/{server}/{session}/websocket``) and raw
(``/websocket``).

An RFC 6455 handshake, compressed (permessage-deflate) or not, runs on the server's own
connection (:mod:`.rfc6455`, whose docstring says why it is ours and not a library's).
A malformed one gets a 400 naming what is wrong. A Hixie-76 handshake (Safari 5, old
iOS) runs on :mod:`.hixie76` through the pump here: the request's task reads messages and
hands them to the registry, and a :class:`WebSocketReceiver` writes whatever the session's
machine has from a short-lived task, then closes the socket once the session is closed.
The raw variant has no SockJS framing: each message is one text frame.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import ServerTimeoutError, WebSocketError, WSMsgType, web

from .. import logs
from ..exceptions import BadPayload
from ..protocol.frames import decode_messages
from ..protocol.rfc6455 import (
    INVALID_DATA,
    NO_STATUS,
    UNSUPPORTED_DATA,
    accept_value,
    close_reason,
    frame_size,
    handshake_problem,
    ws_close_code,
)
from . import hixie76, rfc6455
from .disconnect import watch_disconnect
from .registry import CONNECTION_LOST, SessionRegistry, log_failure
from .session import Session
from .static import text_response

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = ["WebSocketReceiver", "websocket", "BAD_FRAME_CODE", "check_upgrade"]

log = logging.getLogger("sockjs_gateway")

#: WebSocket close code when a SockJS WebSocket frame is not a JSON string or array of
#: strings (1007: "invalid frame payload data"); the session closes with the same code.
BAD_FRAME_CODE = INVALID_DATA


def check_upgrade(request: web.BaseRequest) -> web.Response | None:
    """The protocol's 400 answers for a request that is not a WebSocket upgrade."""
    if request.headers.get("Upgrade", "").lower().strip() != "websocket":
        return text_response(400, 'Can "Upgrade" only to "WebSocket".')
    tokens = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
    if "upgrade" not in tokens:
        return text_response(400, '"Connection" must be "Upgrade".')
    return None


class _Socket(Protocol):
    """What the pump needs of a socket: aiohttp's ``WebSocketResponse`` or Hixie-76."""

    @property
    def closed(self) -> bool: ...

    async def receive(self) -> Any: ...

    def exception(self) -> BaseException | None: ...

    async def send_str(self, data: str) -> None: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...


class WebSocketReceiver:
    """Writes a session's frames to a Hixie-76 socket, from a short-lived task that takes
    whatever is queued, so a burst of sends costs one task."""

    __slots__ = ("_ws", "_session", "_registry", "_task", "_transport", "_aborted", "_loop")

    frames_direct = False  # Hixie-76 frames are not RFC 6455 frames

    def __init__(
        self,
        ws: _Socket,
        session: Session,
        registry: SessionRegistry,
        transport: asyncio.Transport | None,
    ) -> None:
        self._ws = ws
        self._session = session
        self._registry = registry
        self._task: asyncio.Task[None] | None = None
        self._transport = transport
        self._aborted = False
        self._loop = asyncio.get_running_loop()

    def wake(self) -> None:
        if self._task is None:  # else the running flush takes the new frames too
            self._task = self._loop.create_task(self._flush())
            self._task.add_done_callback(log_failure)

    def write_direct(self, frame: bytes) -> bool:
        return False

    def abort(self) -> None:
        self._aborted = True
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.abort()

    async def _flush(self) -> None:
        session = self._session
        machine = session.machine
        registry = self._registry
        ws = self._ws
        loop = asyncio.get_running_loop()
        try:
            while not self._aborted:
                frames = machine.data_to_send(loop.time())
                if not frames:
                    break
                registry.begin_write(session)
                written = 0
                for frame in frames:
                    await ws.send_str(frame)
                    written += frame_size(frame)
                registry.end_write(session)
                registry.stats.bytes_out += written
            closed_with = machine.closed_with
            if closed_with is not None and not ws.closed:
                await ws.close(
                    code=ws_close_code(closed_with.code),
                    message=close_reason(closed_with.reason),
                )
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass  # the socket is gone (or cut off); the reading side ends the session
        finally:
            self._task = None

    async def finish(self) -> None:
        """Wait for a write in progress to end."""
        task = self._task
        if task is not None:
            await asyncio.wait([task])


async def websocket(
    request: web.Request, endpoint: Endpoint, session_id: str, *, raw: bool, principal: Any = None
) -> web.StreamResponse:
    """Serve one WebSocket connection as one session until either side closes it."""
    refused = check_upgrade(request)
    if refused is not None:
        return refused
    if not hixie76.is_hixie76(request):
        problem = handshake_problem(request.headers)
        if problem is not None:
            log.info("WebSocket handshake refused: %s", problem)
            refusal = text_response(400, problem)
            refusal.headers["Sec-WebSocket-Version"] = "13"  # RFC 6455 4.4
            return refusal
        accept = accept_value(request.headers["Sec-WebSocket-Key"])
        return await rfc6455.serve(request, endpoint, session_id, accept, principal, raw=raw)
    hixie = await hixie76.accept(request, endpoint.options.max_message_bytes)
    ws, response = hixie, hixie.response
    if hixie.closed:
        return response
    registry = endpoint.registry
    name = "raw-websocket" if raw else "websocket"
    session = registry.create(
        session_id,
        endpoint.connection_info(request, name),
        websocket=True,
        raw=raw,
        principal=principal,
    )
    receiver = WebSocketReceiver(ws, session, registry, request.transport)
    with watch_disconnect(request, _ignore):
        registry.attach(session, receiver)
        try:
            await _read(ws, session, registry, raw=raw)
        finally:
            # Runs on cancellation too (aiohttp cancels the handler when the client
            # vanishes if the app enables handler_cancellation): the session must never
            # outlive its socket.
            registry.client_closed(session, *CONNECTION_LOST)
            try:
                await receiver.finish()
            finally:
                registry.forget(session)
    return response


async def _read(ws: _Socket, session: Session, registry: SessionRegistry, *, raw: bool) -> None:
    """Hand the client's messages to the session until the socket ends, then close the
    session with the code and reason its handler's ``on_close`` should get."""
    while True:
        msg = await ws.receive()
        if msg.type is WSMsgType.TEXT:
            if raw:
                await registry.deliver(session, [msg.data], len(msg.data))
                continue
            if not msg.data:
                continue  # the protocol: empty frames are ignored
            try:
                messages = decode_messages(msg.data, allow_single=True)
            except BadPayload as error:
                return await _refuse(ws, session, registry, BAD_FRAME_CODE, str(error))
            await registry.deliver(session, messages, len(msg.data))
        elif msg.type is WSMsgType.BINARY:
            return await _refuse(ws, session, registry, UNSUPPORTED_DATA, "Text frames only.")
        elif msg.type is WSMsgType.CLOSE:
            return registry.client_closed(session, int(msg.data or NO_STATUS), str(msg.extra or ""))
        elif msg.type in _ENDED:
            if isinstance(msg.data, WebSocketError):  # e.g. 1009, message too big
                logs.protocol_close(session, int(msg.data.code), str(msg.data))
                return registry.client_closed(session, int(msg.data.code), str(msg.data))
            if isinstance(ws.exception(), asyncio.TimeoutError | ServerTimeoutError):
                registry.stats.heartbeat_timeouts += 1
                return registry.client_closed(session, 1006, "No pong")
            return registry.client_closed(session, *CONNECTION_LOST)


async def _refuse(
    ws: _Socket, session: Session, registry: SessionRegistry, code: int, reason: str
) -> None:
    logs.protocol_close(session, code, reason)
    registry.client_closed(session, code, reason)
    await ws.close(code=code, message=reason.encode())


def _ignore() -> None:
    return None


_ENDED = frozenset({WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR})
