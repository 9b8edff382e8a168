"""SockJS-framed (``/{server}/{session}/websocket``) and raw (``/websocket``) WebSocket.

Both run the same pump: the request's task reads frames and hands messages to the
registry; a :class:`WebSocketReceiver` writes whatever the session's machine has, from a
short-lived task started on wake-up, and closes the socket once the session is closed.
The raw variant has no SockJS framing (each message is one WebSocket text frame) and uses
WebSocket pings instead of ``h`` frames.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import WSCloseCode, WSMsgType, web

from ..exceptions import BadPayload
from ..protocol.frames import decode_messages
from ..protocol.state import SessionState
from . import hixie76
from .session import Session
from .static import text_response

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = ["WebSocketReceiver", "websocket", "BAD_FRAME_CODE", "check_upgrade"]

log = logging.getLogger("sockjs_gateway")

#: WebSocket close code when a SockJS WebSocket frame is not a JSON string or array of
#: strings (1007: "invalid frame payload data"); the session closes with the same code.
BAD_FRAME_CODE = int(WSCloseCode.INVALID_TEXT)


def check_upgrade(request: web.BaseRequest) -> web.Response | None:
    """The protocol's 400 answers for a request that is not a WebSocket upgrade."""
    if request.headers.get("Upgrade", "").lower().strip() != "websocket":
        return text_response(400, 'Can "Upgrade" only to "WebSocket".')
    tokens = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
    if "upgrade" not in tokens:
        return text_response(400, '"Connection" must be "Upgrade".')
    return None


def _ws_close_code(code: int) -> int:
    # Application codes 3000-4999 and 1000 may go in a WebSocket close frame; SockJS
    # codes such as 1002 or 2010 are told in the ``c`` frame, and the socket ends with 1000.
    return code if code == 1000 or 3000 <= code <= 4999 else 1000


class _Socket(Protocol):
    """What the pump needs of a socket: aiohttp's ``WebSocketResponse`` or Hixie-76."""

    @property
    def closed(self) -> bool: ...

    @property
    def close_code(self) -> int | None: ...

    def exception(self) -> BaseException | None: ...

    async def send_str(self, data: str) -> None: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...

    def __aiter__(self) -> AsyncIterator[Any]: ...


class WebSocketReceiver:
    """Writes a session's frames to its WebSocket."""

    __slots__ = ("_ws", "_session", "_task")

    def __init__(self, ws: _Socket, session: Session) -> None:
        self._ws = ws
        self._session = session
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        machine = self._session.machine
        ws = self._ws
        loop = asyncio.get_running_loop()
        try:
            while True:
                frames = machine.take_frames(loop.time())
                if not frames:
                    break
                for frame in frames:
                    await ws.send_str(frame)
            if machine.state is SessionState.CLOSED and not ws.closed:
                code, reason = 1000, b""
                if machine.raw and machine.closed_with is not None:
                    code = _ws_close_code(machine.closed_with.code)
                    reason = machine.closed_with.reason.encode()[:123]
                await ws.close(code=code, message=reason)
        except (ConnectionError, RuntimeError):
            pass  # the socket is gone; the reading side ends the session
        finally:
            self._task = None

    async def finish(self) -> None:
        """Wait for a write in progress to end."""
        task = self._task
        if task is not None:
            await asyncio.wait([task])


async def websocket(
    request: web.Request, endpoint: Endpoint, session_id: str, *, raw: bool
) -> web.StreamResponse:
    """Serve one WebSocket connection as one session until either side closes it."""
    refused = check_upgrade(request)
    if refused is not None:
        return refused
    options = endpoint.options
    ws: _Socket
    response: web.StreamResponse
    if hixie76.is_hixie76(request):
        legacy = await hixie76.accept(request, options.max_message_bytes)
        ws, response = legacy, legacy.response
        if legacy.closed:
            return response
    else:
        ws = response = web.WebSocketResponse(
            max_msg_size=options.max_message_bytes,
            heartbeat=options.heartbeat_delay if raw else None,
        )
        await response.prepare(request)
    registry = endpoint.registry
    name = "raw-websocket" if raw else "websocket"
    session = registry.create(
        session_id, endpoint.connection_info(request, name), websocket=True, raw=raw
    )
    receiver = WebSocketReceiver(ws, session)
    registry.attach(session, receiver)
    code, reason = 1000, ""
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                if raw:
                    registry.receive(session, [msg.data])
                    continue
                if not msg.data:
                    continue  # the protocol: empty frames are ignored
                try:
                    messages = decode_messages(msg.data, allow_single=True)
                except BadPayload as error:
                    code, reason = BAD_FRAME_CODE, str(error)
                    await ws.close(code=code, message=reason.encode())
                    break
                registry.receive(session, messages)
            elif msg.type is WSMsgType.BINARY:
                code, reason = int(WSCloseCode.UNSUPPORTED_DATA), "Text frames only."
                await ws.close(code=code, message=reason.encode())
                break
        else:
            code = ws.close_code or 1000
            if isinstance(ws.exception(), Exception):
                code, reason = 1006, "Connection lost"
    finally:
        if session.machine.state is not SessionState.CLOSED:
            registry.client_closed(session, code, reason)
        await receiver.finish()
        registry.forget(session)
    return response
