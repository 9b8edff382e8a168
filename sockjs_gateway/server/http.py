"""Every HTTP transport: one downstream handler driven by a ``TransportSpec`` row, and one
upstream handler for ``xhr_send`` and ``jsonp_send``.

The downstream handler attaches an :class:`HttpReceiver` to the session and writes what
the machine gives it: one frame for a polling transport, frames up to ``response_limit``
bytes for a streaming one. A receiver whose client goes away interrupts its session; one
whose writes stay stuck past ``send_time_limit`` is cut off by the registry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from aiohttp import web

from ..exceptions import BadPayload
from ..logs import refusal
from ..protocol.frames import BROKEN_JSON, PAYLOAD_EXPECTED, decode_messages, encode
from ..protocol.replies import TEXT_PLAIN
from ..protocol.state import ANOTHER_CONNECTION, Attach
from ..protocol.transports import TransportSpec
from .disconnect import watch_disconnect
from .session import Session
from .static import text_response

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = [
    "HttpReceiver",
    "receive",
    "send",
    "read_body",
    "too_slow",
    "deliver_body",
    "PAYLOAD_TOO_LARGE",
    "BODY_TOO_SLOW",
]

#: Body of the 413 answer to an ``xhr_send``/``jsonp_send`` body over ``max_message_bytes``.
PAYLOAD_TOO_LARGE = "Payload too large."
#: Body of the 408 answer to an ``xhr_send``/``jsonp_send`` body slower than ``body_timeout``.
BODY_TOO_SLOW = "Request body too slow."
_FORM = "application/x-www-form-urlencoded"


class HttpReceiver:
    """Wakes the request handler that is waiting to write a session's frames.

    A streaming response, once its prelude is out, may also write frames itself as they
    are queued (:meth:`stream_directly`): straight to the transport, one chunk per frame,
    with no task switch, while the transport's flow control has not paused it. The
    request's task is only woken to end the response (budget reached, session closed).
    """

    __slots__ = (
        "_waiter",
        "_request",
        "lost",
        "sent",
        "_session",
        "_spec",
        "_callback",
        "_chunked",
        "_budget",
        "_paused",
        "_direct",
    )

    def __init__(self, request: web.BaseRequest) -> None:
        self._waiter: asyncio.Future[None] | None = None
        self._request = request
        self.lost = False
        #: Bytes of frames this response carried (for ``response_limit``).
        self.sent = 0
        self._session: Session | None = None
        self._spec: TransportSpec | None = None
        self._callback = ""
        self._chunked = False
        self._budget = 0
        self._paused = False
        self._direct = False

    def stream_directly(
        self, session: Session, spec: TransportSpec, callback: str, *, chunked: bool, budget: int
    ) -> None:
        """Let :meth:`wake` write ``session``'s frames itself (see the class docstring)."""
        self._session, self._spec, self._callback = session, spec, callback
        self._chunked, self._budget = chunked, budget
        self._direct = True

    def pause(self) -> None:
        self._paused = True
        if self._session is not None:
            self._session.endpoint.registry.begin_write(self._session)

    def resume(self) -> None:
        self._paused = False
        if self._session is not None:
            self._session.endpoint.registry.end_write(self._session, 0)
        self.wake()

    def wake(self) -> None:
        session = self._session
        if (
            self._direct
            and not self.lost
            and session is not None
            and session.machine.closed_with is None
            and (self._paused or self._write_queued())
        ):
            return  # written, or waiting in the bounded queue until resume()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _write_queued(self) -> bool:
        """Write queued frames to the transport; True if the request's task need not wake."""
        session, spec = self._session, self._spec
        transport = self._request.transport
        if (
            session is None
            or spec is None
            or self._waiter is None  # the task is writing itself
            or self._waiter.done()
            or transport is None
            or transport.is_closing()
        ):
            return False
        frames = session.machine.data_to_send(asyncio.get_running_loop().time())
        written = 0
        for frame in frames:
            data = spec.wrap(frame, self._callback).encode()
            transport.write(b"%x\r\n%s\r\n" % (len(data), data) if self._chunked else data)
            written += len(data)
        self.sent += written
        session.endpoint.stats.bytes_out += written
        return self.sent < self._budget

    def lose(self) -> None:
        self.lost = True
        self.wake()

    def abort(self) -> None:
        self.lost = True
        transport = self._request.transport
        if transport is not None:
            transport.abort()  # fails the stuck write; the handler then ends
        self.wake()

    def write_direct(self, frame: bytes) -> bool:
        return False  # HTTP receivers write from their request's task

    frames_direct = False

    def wait(self) -> asyncio.Future[None]:
        """What the request's task awaits until the next :meth:`wake` (a future, not a
        coroutine: one frame less in every waiting response)."""
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        return waiter


def receive(
    request: web.Request, endpoint: Endpoint, spec: TransportSpec, session: Session, callback: str
) -> web.StreamResponse | Awaitable[web.StreamResponse]:
    """The downstream half of every HTTP transport (``xhr``, ``xhr_streaming``,
    ``eventsource``, ``htmlfile``, ``jsonp``).

    A plain function that attaches the receiver and returns the coroutine that answers,
    so that only that one frame stays alive while a response waits for frames. A poll
    that finds a frame waiting is answered at once: the response itself is returned, with
    no coroutine, no waiting and no disconnect watch (the common case of a busy session).
    """
    registry = endpoint.registry
    if not spec.streaming:
        frames = registry.take_waiting(session)
        if frames:
            return _reply(request, endpoint, spec, callback, frames)
    receiver = HttpReceiver(request)
    result = registry.attach(session, receiver)
    if result is Attach.OK:
        if spec.streaming:
            return _stream(request, endpoint, spec, session, receiver, callback)
        frames = session.machine.data_to_send(asyncio.get_running_loop().time(), limit=1)
        if frames:
            registry.detach(session)
            return _reply(request, endpoint, spec, callback, frames)
        return _poll(request, endpoint, spec, session, receiver, callback)
    if result is Attach.BUSY:
        return _answer(request, endpoint, spec, callback, encode(ANOTHER_CONNECTION))
    return _answer(request, endpoint, spec, callback, session.machine.close_frame or "")


async def _answer(
    request: web.Request, endpoint: Endpoint, spec: TransportSpec, callback: str, frame: str
) -> web.StreamResponse:
    """The one-frame answer to a busy or closed session."""
    if not spec.streaming:
        return _reply(request, endpoint, spec, callback, [frame])
    response = web.StreamResponse(
        headers=endpoint.session_headers(request, spec, spec.content_type)
    )
    if request.version < (1, 1):
        response.force_close()
    await response.prepare(request)
    await response.write(spec.prelude(callback).encode())
    await response.write(spec.wrap(frame, callback).encode())
    await response.write_eof()
    return response


def _reply(
    request: web.Request, endpoint: Endpoint, spec: TransportSpec, callback: str, frames: list[str]
) -> web.Response:
    """A polling answer: ``frames`` (none if the client left, at most one otherwise)."""
    if len(frames) == 1:
        body = spec.wrap(frames[0], callback).encode()
    else:
        body = "".join(spec.wrap(frame, callback) for frame in frames).encode()
    endpoint.registry.stats.bytes_out += len(body)
    return web.Response(
        body=body, headers=endpoint.session_headers(request, spec, spec.content_type)
    )


async def _poll(
    request: web.Request,
    endpoint: Endpoint,
    spec: TransportSpec,
    session: Session,
    receiver: HttpReceiver,
    callback: str,
) -> web.Response:
    """A poll that found no frame waiting: wait for one (or for the client to leave)."""
    registry = endpoint.registry
    loop = asyncio.get_running_loop()
    frames: list[str] = []
    with watch_disconnect(request, receiver.lose):
        try:
            while not receiver.lost:
                await receiver.wait()
                frames = session.machine.data_to_send(loop.time(), limit=1)
                if frames:
                    registry.detach(session)
                    break
            else:
                registry.interrupt(session)
        except asyncio.CancelledError:
            registry.interrupt(session)
            raise
    return _reply(request, endpoint, spec, callback, frames)


async def _stream(
    request: web.Request,
    endpoint: Endpoint,
    spec: TransportSpec,
    session: Session,
    receiver: HttpReceiver,
    callback: str,
) -> web.StreamResponse:
    registry = endpoint.registry
    machine = session.machine
    loop = asyncio.get_running_loop()
    budget = endpoint.options.response_limit
    response = web.StreamResponse(
        headers=endpoint.session_headers(request, spec, spec.content_type)
    )
    chunked = request.version >= (1, 1)
    if not chunked:
        response.force_close()  # no chunking in HTTP/1.0: the end of the stream is EOF
    watch = watch_disconnect(
        request, receiver.lose, on_pause=receiver.pause, on_resume=receiver.resume
    )
    with watch:
        try:
            await response.prepare(request)
            # Frames go out one chunk each: clients and the protocol suite read by chunk.
            await response.write(spec.prelude(callback).encode())
            receiver.stream_directly(session, spec, callback, chunked=chunked, budget=budget)
            while not receiver.lost:
                if machine.finished or receiver.sent >= budget:
                    registry.detach(session)
                    await response.write_eof()
                    return response
                frames = machine.data_to_send(loop.time())
                if not frames:
                    await receiver.wait()
                    continue
                registry.begin_write(session)
                written = 0
                for frame in frames:
                    data = spec.wrap(frame, callback).encode()
                    await response.write(data)
                    written += len(data)
                registry.end_write(session, written)
                receiver.sent += written
                if machine.finished or receiver.sent >= budget:
                    registry.detach(session)
                    await response.write_eof()
                    return response
            registry.interrupt(session)
        except ConnectionError:
            # The client left, or was cut off as a slow consumer: nothing to report.
            registry.interrupt(session)
        except asyncio.CancelledError:
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


async def send(
    request: web.Request, endpoint: Endpoint, spec: TransportSpec, session: Session
) -> web.Response:
    """The upstream half: ``POST .../xhr_send`` (a JSON array of strings; 204) and
    ``POST .../jsonp_send`` (the array as form field ``d`` or as the body; 200 "ok")."""
    registry = endpoint.registry
    limit = endpoint.options.max_message_bytes
    # One upstream request of a session at a time, and only once its handler has room:
    # a waiting request holds no body (aiohttp stops reading it), and messages keep the
    # order in which the client sent them.
    lock = registry.upstream(session)
    content = request.content
    if not lock.locked() and content.is_eof() and registry.wait_for_space(session) is None:
        # The whole body is here, nobody is ahead of us and the handler has room: read
        # and deliver it without waiting (nothing can come between, so no lock is needed).
        body = content.read_nowait()
        answer = _deliver(request, endpoint, spec, session, body if len(body) <= limit else None)
    else:
        async with lock:
            await registry.room(session)
            try:
                async with asyncio.timeout(endpoint.options.body_timeout):
                    read = await _read_body(request, limit)
            except TimeoutError:
                return _too_slow(request, endpoint)
            answer = _deliver(request, endpoint, spec, session, read)
    if answer is not None:
        return answer
    headers = endpoint.session_headers(request, spec, TEXT_PLAIN)
    if spec.needs_callback:
        return web.Response(body=b"ok", headers=headers)
    return web.Response(status=204, headers=headers)


def _too_slow(request: web.Request, endpoint: Endpoint) -> web.Response:
    """408 for a body that did not arrive within ``body_timeout``; the connection closes,
    as the rest of the body may still be on its way."""
    endpoint.stats.refused["body_timeout"] += 1
    refusal(
        "body_timeout",
        "%s body not complete within %s s from %s",
        request.path,
        endpoint.options.body_timeout,
        request.remote,
    )
    return text_response(408, BODY_TOO_SLOW, close=True)


def _deliver(
    request: web.Request,
    endpoint: Endpoint,
    spec: TransportSpec,
    session: Session,
    body: bytes | None,
) -> web.Response | None:
    """Hand the messages of ``body`` to the session's handler; the error answer if the
    body is too large (None) or not a valid payload."""
    form = spec.needs_callback and request.content_type == _FORM
    return deliver_body(endpoint, spec, session, body, form=form)


def deliver_body(
    endpoint: Endpoint, spec: TransportSpec, session: Session, body: bytes | None, *, form: bool
) -> web.Response | None:
    """:func:`_deliver` without the request (a relayed send, see :mod:`.relay_owner`):
    ``form`` says the body is ``application/x-www-form-urlencoded``."""
    if body is None:
        return text_response(413, PAYLOAD_TOO_LARGE, close=True)
    try:
        text = body.decode("utf-8")
        if form:
            text = parse_qs(text, keep_blank_values=True).get("d", [""])[0]
            if not text:
                raise BadPayload(PAYLOAD_EXPECTED)
        messages = decode_messages(text)
    except UnicodeDecodeError:
        return text_response(500, BROKEN_JSON)
    except BadPayload as error:
        return text_response(500, str(error))
    endpoint.registry.deliver_now(session, messages, len(body))
    return None


#: The body reader and the 408 answer, shared with the relaying node (:mod:`.relay_client`).
read_body = _read_body
too_slow = _too_slow
