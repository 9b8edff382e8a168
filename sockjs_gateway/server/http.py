"""Every HTTP transport: one downstream handler driven by a ``TransportSpec`` row, and one
upstream handler for ``xhr_send`` and ``jsonp_send``.

The downstream handler attaches an :class:`HttpReceiver` to the session and writes what
the machine gives it: one frame for a polling transport, frames up to ``response_limit``
bytes for a streaming one. A receiver whose client goes away interrupts its session.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from aiohttp import web

from ..exceptions import BadPayload
from ..protocol.frames import PAYLOAD_EXPECTED, decode_messages, encode
from ..protocol.replies import TEXT_PLAIN, Headers
from ..protocol.state import ANOTHER_CONNECTION, Attach
from ..protocol.transports import TransportSpec, valid_callback
from .disconnect import watch_disconnect
from .session import Session
from .static import text_response

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = ["HttpReceiver", "receive", "xhr_send", "jsonp_send", "PAYLOAD_TOO_LARGE"]

#: Body of the 413 answer to an ``xhr_send``/``jsonp_send`` body over ``max_message_bytes``.
PAYLOAD_TOO_LARGE = "Payload too large."
_FORM = "application/x-www-form-urlencoded"


class HttpReceiver:
    """Wakes the request handler that is waiting to write a session's frames."""

    __slots__ = ("_waiter", "lost")

    def __init__(self) -> None:
        self._waiter: asyncio.Future[None] | None = None
        self.lost = False

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def lose(self) -> None:
        self.lost = True
        self.wake()

    async def wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


async def receive(
    request: web.Request, endpoint: Endpoint, spec: TransportSpec, session_id: str
) -> web.StreamResponse:
    """The downstream half of every HTTP transport (``xhr``, ``xhr_streaming``,
    ``eventsource``, ``htmlfile``, ``jsonp``)."""
    callback = ""
    if spec.needs_callback:
        callback = request.query.get("c") or request.query.get("callback") or ""
        if not callback:
            return text_response(500, '"callback" parameter required')
        if not valid_callback(callback):
            return text_response(500, 'invalid "callback" parameter')
    headers = [("Content-Type", spec.content_type), *endpoint.session_headers(request, spec)]
    registry = endpoint.registry
    session = registry.get(session_id)
    if session is None:
        session = registry.create(session_id, endpoint.connection_info(request, spec.name))
    receiver = HttpReceiver()
    result = registry.attach(session, receiver)
    if result is Attach.BUSY:
        frames = [encode(ANOTHER_CONNECTION)]
    elif result is Attach.GONE:
        frames = [session.machine.close_frame or ""]
    elif not spec.streaming:
        frames = await _poll(request, endpoint, session, receiver)
    else:
        return await _stream(request, endpoint, spec, session, receiver, callback, headers)
    if not spec.streaming:
        body = "".join(spec.wrap(frame, callback) for frame in frames)
        return web.Response(body=body.encode(), headers=headers)
    response = web.StreamResponse(headers=headers)
    if request.version < (1, 1):
        response.force_close()
    await response.prepare(request)
    await response.write(spec.prelude(callback).encode())
    await response.write(spec.wrap(frames[0], callback).encode())
    await response.write_eof()
    return response


async def _poll(
    request: web.Request, endpoint: Endpoint, session: Session, receiver: HttpReceiver
) -> list[str]:
    registry = endpoint.registry
    loop = asyncio.get_running_loop()
    with watch_disconnect(request, receiver.lose):
        try:
            while True:
                frames = session.machine.take_frames(loop.time(), limit=1)
                if frames:
                    registry.detach(session)
                    return frames
                if receiver.lost:
                    registry.interrupt(session)
                    return []
                await receiver.wait()
        except asyncio.CancelledError:
            registry.interrupt(session)
            raise


async def _stream(
    request: web.Request,
    endpoint: Endpoint,
    spec: TransportSpec,
    session: Session,
    receiver: HttpReceiver,
    callback: str,
    headers: Headers,
) -> web.StreamResponse:
    registry = endpoint.registry
    machine = session.machine
    loop = asyncio.get_running_loop()
    budget = endpoint.options.response_limit
    response = web.StreamResponse(headers=headers)
    if request.version < (1, 1):
        response.force_close()  # no chunking in HTTP/1.0: the end of the stream is EOF
    sent = 0
    with watch_disconnect(request, receiver.lose):
        try:
            await response.prepare(request)
            # Frames go out one chunk each: clients and the protocol suite read by chunk.
            await response.write(spec.prelude(callback).encode())
            while not receiver.lost:
                frames = machine.take_frames(loop.time())
                if not frames:
                    await receiver.wait()
                    continue
                for frame in frames:
                    data = spec.wrap(frame, callback).encode()
                    await response.write(data)
                    sent += len(data)
                if machine.finished or sent >= budget:
                    registry.detach(session)
                    await response.write_eof()
                    return response
            registry.interrupt(session)
        except (ConnectionError, asyncio.CancelledError):
            registry.interrupt(session)
            raise
    return response


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The request body, or None if it is longer than ``limit`` (read no further)."""
    length = request.content_length
    if length is not None and length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


async def _upstream(
    request: web.Request, endpoint: Endpoint, session_id: str, spec_name: str, ok: web.Response
) -> web.Response:
    session = endpoint.registry.get(session_id)
    if session is None or session.closed:
        return web.Response(status=404)
    body = await _read_body(request, endpoint.options.max_message_bytes)
    if body is None:
        return text_response(413, PAYLOAD_TOO_LARGE, close=True)
    try:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadPayload("Broken JSON encoding.") from None
        if spec_name == "jsonp-polling" and request.content_type == _FORM:
            fields = parse_qs(text, keep_blank_values=True)
            text = fields.get("d", [""])[0]
            if not text:
                raise BadPayload(PAYLOAD_EXPECTED)
        messages = decode_messages(text)
    except BadPayload as error:
        return text_response(500, str(error))
    endpoint.registry.receive(session, messages)
    return ok


async def xhr_send(
    request: web.Request, endpoint: Endpoint, session_id: str, spec: TransportSpec
) -> web.Response:
    """``POST .../xhr_send``: a JSON array of strings; 204 on success."""
    ok = web.Response(
        status=204, headers=[("Content-Type", TEXT_PLAIN), *endpoint.session_headers(request, spec)]
    )
    return await _upstream(request, endpoint, session_id, spec.name, ok)


async def jsonp_send(
    request: web.Request, endpoint: Endpoint, session_id: str, spec: TransportSpec
) -> web.Response:
    """``POST .../jsonp_send``: the array as form field ``d`` or as the raw body; 200 "ok"."""
    ok = web.Response(
        body=b"ok", headers=[("Content-Type", TEXT_PLAIN), *endpoint.session_headers(request, spec)]
    )
    return await _upstream(request, endpoint, session_id, spec.name, ok)
