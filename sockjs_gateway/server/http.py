"""Every HTTP transport: one downstream (server→client) handler driven by a
``TransportSpec`` row, and one upstream (client→server) handler for ``xhr_send`` and
``jsonp_send``.

:func:`downstream` attaches an :class:`HttpReceiver` to the session and writes what the
machine gives it: one frame for a polling transport, frames up to ``response_limit`` bytes
for a streaming one. Its pieces each do one thing:

- :class:`HttpReceiver` is the session's receiver: it turns the registry's calls and the
  connection's loss into wake-ups of the response's task;
- the task (:func:`_poll`, :func:`_stream`) writes through aiohttp's writer: the prelude,
  the frames it finds when woken, the end of the response;
- a :class:`DirectWriter` writes a stream's frames straight to the transport while the
  task is parked, so a frame costs no task switch;
- :class:`ResponseFrames` wraps a stream's frames and counts them, for whichever of the
  two writes them (and for the relay's owner side, :mod:`.relay_owner`).

A receiver whose client goes away interrupts its session; one whose writes stay stuck past
``send_time_limit`` is cut off by the registry.

:func:`upstream` reads a body of messages and hands them to the session's handler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qs

from aiohttp import web

from ..exceptions import BadPayload
from ..logs import refusal
from ..protocol.frames import BROKEN_JSON, PAYLOAD_EXPECTED, decode_messages, encode
from ..protocol.replies import TEXT_PLAIN
from ..protocol.state import ANOTHER_CONNECTION, Attach, SessionState
from ..protocol.transports import TransportSpec
from .disconnect import watch_disconnect
from .session import Session
from .static import text_response

if TYPE_CHECKING:
    from .endpoint import Endpoint
    from .registry import SessionRegistry

__all__ = [
    "HttpReceiver",
    "ResponseFrames",
    "DirectWriter",
    "refused_frame",
    "Serve",
    "downstream",
    "upstream",
    "read_body",
    "too_slow",
    "deliver_body",
    "is_form",
    "PAYLOAD_TOO_LARGE",
    "BODY_TOO_SLOW",
]

#: Body of the 413 answer to an ``xhr_send``/``jsonp_send`` body over ``max_message_bytes``.
PAYLOAD_TOO_LARGE = "Payload too large."
#: Body of the 408 answer to an ``xhr_send``/``jsonp_send`` body slower than ``body_timeout``.
BODY_TOO_SLOW = "Request body too slow."
_FORM = "application/x-www-form-urlencoded"
_BUSY = encode(ANOTHER_CONNECTION)


class HttpReceiver:
    """The session's receiver while one HTTP response is open: it turns the registry's
    calls (:meth:`wake`, :meth:`abort`) and the connection's (:meth:`lose`) into wake-ups
    of the response's task, parked in :meth:`wait`.

    A streaming response may hand its wakes to a :class:`DirectWriter` (:attr:`direct`),
    which writes the frames itself while the task stays parked.
    """

    __slots__ = ("_request", "_parked", "lost", "direct")

    frames_direct = False

    def __init__(self, request: web.BaseRequest) -> None:
        self._request = request
        # What the task is parked on; None while it runs (then it looks at the session
        # before it parks again, so a wake meanwhile has nothing to do).
        self._parked: asyncio.Future[None] | None = None
        #: The client went away, or was cut off.
        self.lost = False
        #: Writes the frames of a parked streaming response (see :class:`DirectWriter`).
        self.direct: DirectWriter | None = None

    def wait(self) -> asyncio.Future[None]:
        """What the response's task awaits until the next wake-up (a future, not a
        coroutine: one frame less in every waiting response)."""
        parked = self._parked = asyncio.get_running_loop().create_future()
        return parked

    def wake(self) -> None:
        parked = self._parked
        if parked is None:
            return
        direct = self.direct
        if direct is not None and not self.lost and direct.took():
            return
        self._parked = None
        if not parked.done():  # not cancelled with its task
            parked.set_result(None)

    def lose(self) -> None:
        """The client went away: the task ends the response and interrupts the session."""
        self.lost = True
        self.wake()

    def abort(self) -> None:
        self.lost = True
        transport = self._request.transport
        if transport is not None:
            transport.abort()  # fails the stuck write; the handler then ends
        self.wake()

    def write_direct(self, frame: bytes) -> bool:
        return False  # WebSocket frames only; HTTP frames go through the session's queue


class ResponseFrames:
    """The frames one downstream response carries: each wrapped for its transport and
    counted, against ``response_limit`` and into ``bytes_out``.

    The one place a downstream response counts what it writes, whoever writes it (the
    response's task, its :class:`DirectWriter`, or the relay's owner side for a response
    held by another node, :mod:`.relay_owner`); polling answers, one body each, count in
    :func:`_reply`.
    """

    __slots__ = ("_spec", "_callback", "_stats", "_machine", "_limit", "sent")

    def __init__(
        self, endpoint: Endpoint, session: Session, spec: TransportSpec, callback: str
    ) -> None:
        self._spec = spec
        self._callback = callback
        self._stats = endpoint.stats
        self._machine = session.machine
        self._limit = endpoint.options.response_limit
        #: Bytes of frames this response carried.
        self.sent = 0

    def encode(self, frame: str) -> bytes:
        """``frame`` as the bytes this response writes, counted."""
        data = self._spec.wrap(frame, self._callback).encode()
        size = len(data)
        self.sent += size
        self._stats.bytes_out += size
        return data

    @property
    def spent(self) -> bool:
        """The response carried ``response_limit`` bytes: it ends, and the client opens
        the next one (which frees what the client keeps of this one)."""
        return self.sent >= self._limit

    @property
    def due(self) -> bool:
        """The response must end now: its budget is spent, or its session is finished
        (closed, and the close frame written)."""
        return self.sent >= self._limit or self._machine.finished


class DirectWriter:
    """Writes a streaming response's frames straight to its transport while the
    response's task is parked: one chunk per frame (clients and the protocol suite read
    by chunk), with no task switch.

    It writes nothing while the transport's flow control has paused it: the frames wait in
    the session's bounded queue until :meth:`resume`, and a pause that lasts past
    ``send_time_limit`` makes a slow consumer, as a stuck write would. The task is woken
    instead when the session closed (it writes the close frame and ends), the budget is
    spent, or the transport is closing.
    """

    __slots__ = (
        "_session",
        "_registry",
        "_frames",
        "_transport",
        "_chunked",
        "_receiver",
        "_paused",
    )

    def __init__(
        self,
        session: Session,
        registry: SessionRegistry,
        frames: ResponseFrames,
        request: web.BaseRequest,
        receiver: HttpReceiver,
        *,
        chunked: bool,
    ) -> None:
        self._session = session
        self._registry = registry
        self._frames = frames
        self._transport = request.transport
        self._chunked = chunked
        self._receiver = receiver
        self._paused = False

    def pause(self) -> None:
        """The transport's buffer passed its high-water mark: stop writing."""
        self._paused = True
        self._registry.begin_write(self._session)

    def resume(self) -> None:
        """The transport's buffer drained: write what waited."""
        self._paused = False
        self._registry.end_write(self._session)
        self._receiver.wake()

    def took(self) -> bool:
        """Handle a wake-up of the parked task here: True if the session's frames are
        written (and the budget is not spent) or wait for :meth:`resume`; False if the
        task must wake."""
        machine = self._session.machine
        if machine.state is SessionState.CLOSED:
            return False
        if self._paused:
            return True
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        frames = self._frames
        chunked = self._chunked
        for frame in machine.data_to_send(asyncio.get_running_loop().time()):
            data = frames.encode(frame)
            transport.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
        return not frames.spent


#: What serves a session's HTTP request, by direction (:func:`downstream`,
#: :func:`upstream`): (request, endpoint, transport, session, callback) to the response,
#: or to the coroutine that makes it.
Serve = Callable[
    [web.Request, "Endpoint", TransportSpec, Session, str],
    "web.StreamResponse | Awaitable[web.StreamResponse]",
]


def refused_frame(session: Session, result: Attach) -> str:
    """The one frame that answers a receiver ``attach`` did not let in: 2010 "Another
    connection still open" while another holds the session, else its close frame
    (replayed to every receiver that comes after the close)."""
    if result is Attach.BUSY:
        return _BUSY
    return session.machine.close_frame or ""


def downstream(
    request: web.Request, endpoint: Endpoint, spec: TransportSpec, session: Session, callback: str
) -> web.StreamResponse | Awaitable[web.StreamResponse]:
    """The server→client half of every HTTP transport (``xhr``, ``xhr_streaming``,
    ``eventsource``, ``htmlfile``, ``jsonp``).

    A plain function that attaches the receiver and returns the coroutine that answers,
    so that only that one frame stays alive while a response waits for frames. A poll
    that finds a frame waiting is answered at once: the response itself is returned, with
    no coroutine, no waiting and no disconnect watch (the common case of a busy session).

    A poll that finds none while the session's handler still has messages to handle
    lets the handler's task go first (:func:`_after_handler`): what the handler sends is
    most often what the poll waits for.
    """
    if not spec.streaming:
        registry = endpoint.registry
        frames = registry.take_waiting(session)
        if frames:
            return _reply(request, endpoint, spec, callback, frames)
        if registry.handling(session):
            return _after_handler(request, endpoint, spec, session, callback)
    return _receive(request, endpoint, spec, session, callback)


async def _after_handler(
    request: web.Request, endpoint: Endpoint, spec: TransportSpec, session: Session, callback: str
) -> web.StreamResponse:
    """A poll that came while the session's handler has messages to handle, typically
    the send that went out with it (clients send and poll at once). The handler's task
    is already scheduled (on Python 3.11 a task cannot start eagerly), so one step of the
    loop lets it run first; its answer then waits for the poll, which takes it at once
    instead of attaching, parking and being woken (measured: under the xhr-polling echo
    bench, 99% of polls parked before, against none on the minimal aiohttp floor). A
    handler that sends nothing, or still works after that step, costs the poll that one
    step and it attaches as usual."""
    await asyncio.sleep(0)
    frames = endpoint.registry.take_waiting(session)
    if frames:
        return _reply(request, endpoint, spec, callback, frames)
    answer = _receive(request, endpoint, spec, session, callback)
    if type(answer) is web.Response:
        return answer
    return await cast("Awaitable[web.StreamResponse]", answer)


def _receive(
    request: web.Request, endpoint: Endpoint, spec: TransportSpec, session: Session, callback: str
) -> web.StreamResponse | Awaitable[web.StreamResponse]:
    """Attach the response as the session's receiver: a refusal's one frame, a stream,
    the frame already there, or a poll that waits for one."""
    registry = endpoint.registry
    receiver = HttpReceiver(request)
    result = registry.attach(session, receiver)
    if result is not Attach.OK:
        frame = refused_frame(session, result)
        if spec.streaming:
            return _answer(request, endpoint, spec, session, callback, frame)
        return _reply(request, endpoint, spec, callback, [frame])
    if spec.streaming:
        return _stream(request, endpoint, spec, session, receiver, callback)
    machine = session.machine
    if machine.has_frames():  # the open frame, or what came since take_waiting
        frames = machine.data_to_send(asyncio.get_running_loop().time(), limit=1)
        registry.detach(session)
        return _reply(request, endpoint, spec, callback, frames)
    return _poll(request, endpoint, spec, session, receiver, callback)


def _reply(
    request: web.Request, endpoint: Endpoint, spec: TransportSpec, callback: str, frames: list[str]
) -> web.Response:
    """A polling answer: ``frames`` (none if the client left, at most one otherwise),
    counted into ``bytes_out`` here."""
    if len(frames) == 1:
        body = spec.wrap(frames[0], callback).encode()
    else:
        body = "".join(spec.wrap(frame, callback) for frame in frames).encode()
    endpoint.stats.bytes_out += len(body)
    return web.Response(
        body=body, headers=endpoint.session_headers(request, spec, spec.content_type)
    )


async def _answer(
    request: web.Request,
    endpoint: Endpoint,
    spec: TransportSpec,
    session: Session,
    callback: str,
    frame: str,
) -> web.StreamResponse:
    """A streaming response that carries one frame and ends (the session is busy or
    closed, see :func:`refused_frame`)."""
    response = web.StreamResponse(
        headers=endpoint.session_headers(request, spec, spec.content_type)
    )
    if request.version < (1, 1):
        response.force_close()
    await response.prepare(request)
    await response.write(spec.prelude(callback).encode())
    await response.write(ResponseFrames(endpoint, session, spec, callback).encode(frame))
    await response.write_eof()
    return response


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
    """A streaming response: the prelude, then frames until the budget is spent or the
    session finished. The task writes through aiohttp's writer (awaiting its flow
    control, as a stuck write the registry times); while it is parked, its
    :class:`DirectWriter` writes."""
    registry = endpoint.registry
    machine = session.machine
    loop = asyncio.get_running_loop()
    frames = ResponseFrames(endpoint, session, spec, callback)
    response = web.StreamResponse(
        headers=endpoint.session_headers(request, spec, spec.content_type)
    )
    chunked = request.version >= (1, 1)
    if not chunked:
        response.force_close()  # no chunking in HTTP/1.0: the end of the stream is EOF
    direct = DirectWriter(session, registry, frames, request, receiver, chunked=chunked)
    with watch_disconnect(request, receiver.lose, on_pause=direct.pause, on_resume=direct.resume):
        try:
            await response.prepare(request)
            await response.write(spec.prelude(callback).encode())
            receiver.direct = direct
            while not receiver.lost:
                if not frames.due:
                    taken = machine.data_to_send(loop.time())
                    if not taken:
                        await receiver.wait()
                        continue
                    registry.begin_write(session)
                    for frame in taken:
                        await response.write(frames.encode(frame))
                    registry.end_write(session)
                    if not frames.due:
                        continue
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


async def upstream(
    request: web.Request,
    endpoint: Endpoint,
    spec: TransportSpec,
    session: Session,
    callback: str = "",
) -> web.Response:
    """The client→server half: ``POST .../xhr_send`` (a JSON array of strings; 204) and
    ``POST .../jsonp_send`` (the array as form field ``d`` or as the body; 200 "ok"). A
    closed session gets 404. ``callback`` is not used: it makes the signature
    :data:`Serve`, that of :func:`downstream`."""
    if session.machine.state is SessionState.CLOSED:
        raise web.HTTPNotFound()
    registry = endpoint.registry
    limit = endpoint.options.max_message_bytes
    form = spec.needs_callback and is_form(request, spec)  # xhr_send: no call
    # One upstream request of a session at a time, and only once its handler has room:
    # a waiting request holds no body (aiohttp stops reading it), and messages keep the
    # order in which the client sent them.
    lock = registry.upstream(session)
    content = request.content
    if not lock.locked() and content.is_eof() and registry.wait_for_space(session) is None:
        # The whole body is here, nobody is ahead of us and the handler has room: read
        # and deliver it without waiting (nothing can come between, so no lock is needed).
        body = content.read_nowait()
        answer = deliver_body(endpoint, session, body if len(body) <= limit else None, form=form)
    else:
        async with lock:
            await registry.room(session)
            try:
                async with asyncio.timeout(endpoint.options.body_timeout):
                    read = await read_body(request, limit)
            except TimeoutError:
                return too_slow(request, endpoint)
            answer = deliver_body(endpoint, session, read, form=form)
    if answer is not None:
        return answer
    headers = endpoint.session_headers(request, spec, TEXT_PLAIN)
    if spec.needs_callback:
        return web.Response(body=b"ok", headers=headers)
    return web.Response(status=204, headers=headers)


async def read_body(request: web.Request, limit: int) -> bytes | None:
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


def is_form(request: web.BaseRequest, spec: TransportSpec) -> bool:
    """Whether a send's body is a form (``jsonp_send`` with ``d=...``) rather than the
    JSON array itself."""
    return spec.needs_callback and request.content_type == _FORM


def too_slow(request: web.BaseRequest, endpoint: Endpoint) -> web.Response:
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


def deliver_body(
    endpoint: Endpoint, session: Session, body: bytes | None, *, form: bool
) -> web.Response | None:
    """Hand the messages of a send's ``body`` to the session's handler (here, or for a
    send relayed from another node, :mod:`.relay_owner`). ``form``: see :func:`is_form`.

    Returns:
        None, or the error answer: 413 if the body was too large (``body`` is None), 500
        if it is not a valid payload.
    """
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
