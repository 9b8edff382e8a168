"""``add_event_stream``: channels served to the browser's own ``EventSource``.

``GET <prefix>/<channel>`` answers ``text/event-stream``. Every message of the channel is
one event whose ``id:`` is ``<epoch>-<offset>`` and which carries ``retry:``, so the
browser, which reconnects by itself, sends the id back as ``Last-Event-ID`` and the stream
resumes after it from the channel's history: nothing lost, nothing twice. A first connect
may say where to start with ``?since=first|last|next|offset=N|timestamp=T`` or
``?last-event-id=<id>``. Each response begins with a ``recovery`` event (a named event:
``addEventListener("recovery", ...)``) whose data is JSON ``{"channel", "epoch",
"recovered"}``; ``recovered: false`` means messages asked for are gone (older than the
history, or from another epoch), so the page should resync.

The stream keeps the SockJS endpoints' rules, read from the same
:class:`~sockjs_gateway.SockJSOptions`: ``allowed_hosts`` (421) and ``allowed_origins``
(403), ``authenticate`` (its ``HTTPForbidden`` is the answer), ``max_sessions`` open
streams (503), ``heartbeat_delay`` (a comment line after that much silence),
``response_limit`` (the response ends after that many bytes; the browser reconnects and
resumes), and the slow-consumer bounds ``max_queued_messages``, ``max_queued_bytes`` and
``send_time_limit``: a stream whose client does not keep up is ended (whatever
``slow_consumer`` says, since the browser resumes from history when it reconnects), and
counted. An ``allow(principal, channel)`` hook may refuse a channel (403).

Each message is formatted and encoded once per event-stream endpoint, then queued for
each of its streams on that channel.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..history import (
    ChannelHub,
    Closable,
    Entry,
    Mode,
    Position,
    Start,
    Subscriber,
    check_channel,
    parse_event_id,
    parse_stream_offset,
)
from ..logs import refusal
from ..options import SockJSOptions
from ..protocol import replies, sse
from ..protocol.hosts import HostPolicy
from ..protocol.origins import OriginPolicy, Verdict, request_scheme
from .endpoint import authenticate
from .registry import EndpointStats
from .static import text_response

__all__ = [
    "EventStream",
    "add_event_stream",
    "Allow",
    "CHANNEL_NOT_ALLOWED",
    "INVALID_START",
    "HISTORY_UNAVAILABLE",
    "RETRY_MS",
    "EVENT_STREAMS",
]

log = logging.getLogger("sockjs_gateway.history")

#: ``allow(principal, channel) -> bool`` (may be async): whether a stream may be opened.
Allow = Callable[[Any, str], bool | Awaitable[bool]]
#: Body of the 403 answer when ``allow`` refuses the channel.
CHANNEL_NOT_ALLOWED = "Channel not allowed."
#: Body of the 400 answer to a ``since`` or ``last-event-id`` query the server cannot read.
INVALID_START = "Invalid since or last-event-id."
#: Body of the 503 answer when the hub cannot read the history (Redis unreachable).
HISTORY_UNAVAILABLE = "History unavailable."
#: The ``retry:`` every event carries unless told otherwise, in milliseconds.
RETRY_MS = 2000
_CONTENT_TYPE = "text/event-stream; charset=UTF-8"
_HEARTBEAT = sse.comment().encode()


class _Stream(Subscriber[str]):
    """One open response: its queue, its cursor, and what wakes its writer."""

    __slots__ = ("queue", "queued", "ended", "_waiter")

    def __init__(self) -> None:
        super().__init__()
        self.queue: list[bytes] = []
        self.queued = 0  # bytes in ``queue``
        self.ended: str | None = None  # why the server ends it
        self._waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def wait(self) -> asyncio.Future[None]:
        self._waiter = asyncio.get_running_loop().create_future()
        return self._waiter

    def end(self, why: str) -> None:
        if self.ended is None:
            self.ended = why
        self.wake()


class _Group:
    __slots__ = ("streams", "handle")

    def __init__(self) -> None:
        self.streams: dict[_Stream, None] = {}
        self.handle: Closable | None = None


class EventStream:
    """One mounted event-stream endpoint (see the module docstring)."""

    def __init__(
        self,
        hub: ChannelHub,
        prefix: str,
        options: SockJSOptions,
        allow: Allow | None = None,
        retry_ms: int = RETRY_MS,
    ) -> None:
        self.hub = hub
        self.prefix = prefix
        self.options = options
        self.allow = allow
        self.retry_ms = retry_ms
        self.origins = OriginPolicy(options.allowed_origins)
        self.hosts = HostPolicy(options.allowed_hosts)
        #: Counters: ``opened``/``closed`` (transport ``"event-stream"``), ``bytes_out``,
        #: ``messages_out``, ``slow_consumer_closes``, ``refused`` by reason.
        self.stats = EndpointStats()
        self._groups: dict[str, _Group] = {}
        self._streams: dict[_Stream, None] = {}

    @property
    def open_streams(self) -> int:
        """Responses streaming now (counted against ``max_sessions``)."""
        return len(self._streams)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET <prefix>/<channel>``."""
        channel = request.match_info["channel"]
        try:
            check_channel(channel)
        except ValueError:
            raise web.HTTPNotFound() from None
        refused = self._check(request)
        if refused is not None:
            return refused
        principal = await self._authenticate(request)
        if self.allow is not None:
            allowed = self.allow(principal, channel)
            if not (await allowed if inspect.isawaitable(allowed) else allowed):
                return self._refuse(request, "channel", 403, CHANNEL_NOT_ALLOWED)
        start = self._start(request)
        if start is None:
            return self._refuse(request, "start", 400, INVALID_START)
        return await self._serve(request, channel, start)

    # -- checks ------------------------------------------------------------------------

    def _check(self, request: web.Request) -> web.Response | None:
        headers = request.headers
        if not self.hosts.allows(headers.get("Host")):
            return self._refuse(request, "host", 421, "Host not allowed.")
        origin = headers.get("Origin")
        scheme = request_scheme(
            request.scheme, headers.get("X-Forwarded-Proto"), headers.get("Forwarded")
        )
        if self.origins.check(origin, request.host, scheme) is Verdict.DENY:
            return self._refuse(request, "origin", 403, "Origin not allowed.")
        if len(self._streams) >= self.options.max_sessions:
            return self._refuse(request, "capacity", 503, "Too many sessions.")
        return None

    def _refuse(self, request: web.Request, reason: str, status: int, text: str) -> web.Response:
        self.stats.refused[reason] += 1
        refusal(
            f"event-stream-{reason}",
            "Event stream %s refused with %d (%s) from %s (Origin %r)",
            request.path,
            status,
            text,
            request.remote,
            request.headers.get("Origin"),
        )
        return text_response(status, text)

    async def _authenticate(self, request: web.Request) -> Any:
        who = f"event stream {request.path} from {request.remote}"
        return await authenticate(self.options, self.stats, request, "event-stream-auth", who)

    def _start(self, request: web.Request) -> Start | None:
        """Where to begin: ``Last-Event-ID`` (a foreign id is ignored), else the query."""
        header = request.headers.get("Last-Event-ID")
        position = parse_event_id(header) if header else None
        if position is not None:
            return Start.after(position)
        query = request.query
        if "last-event-id" in query:
            position = parse_event_id(query["last-event-id"])
            return None if position is None else Start.after(position)
        if "since" in query:
            try:
                return parse_stream_offset(query["since"])
            except ValueError:
                return None
        return Start(Mode.NEXT)

    # -- streaming ---------------------------------------------------------------------

    def _headers(self, request: web.Request) -> replies.Headers:
        headers: replies.Headers = [
            ("Content-Type", _CONTENT_TYPE),
            *replies.NO_CACHE,
            ("X-Accel-Buffering", "no"),
        ]
        origin = request.headers.get("Origin")
        if origin:
            headers += [
                ("Access-Control-Allow-Origin", origin),
                ("Access-Control-Allow-Credentials", "true"),
                ("Vary", "Origin"),
            ]
        return headers

    async def _serve(self, request: web.Request, channel: str, start: Start) -> web.StreamResponse:
        stream = _Stream()
        self._streams[stream] = None
        group = self._groups.get(channel)
        if group is None:
            group = self._groups[channel] = _Group()
            group.handle = self.hub.listen(
                channel, lambda entry: self._deliver(channel, group, entry)
            )
        group.streams[stream] = None
        self.stats.opened["event-stream"] += 1
        response = web.StreamResponse(headers=self._headers(request))
        try:
            try:
                replay = await self.hub.read(channel, start)  # listening already: no gap
            except Exception:  # Redis unreachable: any hub's own error types
                return self._refuse(request, "history", 503, HISTORY_UNAVAILABLE)
            status = {"channel": channel, "epoch": replay.epoch, "recovered": replay.recovered}
            first = [sse.event(json.dumps(status), name="recovery", retry_ms=self.retry_ms)]
            first += map(self._format, stream.catch_up(replay, replay.entries))
            stream.queue.insert(0, "".join(first).encode())
            await response.prepare(request)
            await self._write_until_done(response, stream)
        except ConnectionError:
            pass  # the client went away: nothing to answer
        finally:
            self._forget(channel, group, stream)
        return response

    async def _write_until_done(self, response: web.StreamResponse, stream: _Stream) -> None:
        options = self.options
        sent = 0
        # What is queued when the stream is ended (the replay, for a stream ended while
        # its history was read) still goes out; a slow consumer's queue was cleared.
        while sent < options.response_limit and (stream.queue or stream.ended is None):
            if not stream.queue:
                try:
                    await asyncio.wait_for(stream.wait(), options.heartbeat_delay)
                except TimeoutError:
                    stream.queue.append(_HEARTBEAT)
                continue
            chunk = b"".join(stream.queue)
            stream.queue.clear()
            stream.queued = 0
            try:
                await asyncio.wait_for(response.write(chunk), options.send_time_limit)
            except TimeoutError:
                self._slow(stream, f"a write stuck for {options.send_time_limit:g} s")
                return
            sent += len(chunk)
            self.stats.bytes_out += len(chunk)

    def _format(self, entry: Entry[str]) -> str:
        position = Position(entry.epoch, entry.offset)
        return sse.event(entry.value, event_id=position.event_id(), retry_ms=self.retry_ms)

    def _deliver(self, channel: str, group: _Group, entry: Entry[str]) -> None:
        data: bytes | None = None
        options = self.options
        for stream in list(group.streams):
            if stream.pending is not None:
                if len(stream.pending) >= options.max_queued_messages:
                    self._slow(stream, "too many events arrived while the history was read")
                    stream.pending = None
                    continue
                stream.pending.append(entry)
                continue
            if stream.ended is not None or not stream.cursor.admit(entry.epoch, entry.offset):
                continue
            if data is None:
                data = self._format(entry).encode()
            if stream.cursor.reset:  # the history was lost: say so first
                status = {"channel": channel, "epoch": entry.epoch, "recovered": False}
                stream.queue.append(sse.event(json.dumps(status), name="recovery").encode())
            stream.queue.append(data)
            stream.queued += len(data)
            self.stats.messages_out += 1
            if (
                len(stream.queue) > options.max_queued_messages
                or stream.queued > options.max_queued_bytes
            ):
                self._slow(stream, f"{len(stream.queue)} events ({stream.queued} bytes) queued")
            else:
                stream.wake()

    def _slow(self, stream: _Stream, why: str) -> None:
        self.stats.slow_consumer_closes += 1
        refusal(
            "event-stream-slow", "Event stream on %s ended, slow consumer: %s", self.prefix, why
        )
        stream.queue.clear()
        stream.queued = 0
        stream.end("slow consumer")

    def _forget(self, channel: str, group: _Group, stream: _Stream) -> None:
        self._streams.pop(stream, None)
        if stream in group.streams:
            del group.streams[stream]
            self.stats.closed["event-stream"] += 1
        if not group.streams and self._groups.get(channel) is group:
            del self._groups[channel]
            if group.handle is not None:
                group.handle.close()

    async def shutdown(self) -> None:
        """End every stream (the browser will reconnect to whichever server answers)."""
        for stream in list(self._streams):
            stream.end("shutdown")


#: Event-stream endpoints of an app (so that its shutdown ends their streams).
EVENT_STREAMS = web.AppKey("sockjs_gateway.event_streams", list[EventStream])


async def _shutdown(app: web.Application) -> None:
    for stream in app[EVENT_STREAMS]:
        await stream.shutdown()


def add_event_stream(
    app: web.Application,
    *,
    channels: ChannelHub,
    prefix: str = "/events",
    options: SockJSOptions | None = None,
    allow: Allow | None = None,
    retry_ms: int = RETRY_MS,
) -> EventStream:
    """Serve ``channels`` to EventSource clients at ``<prefix>/<channel>``.

    Args:
        app: the aiohttp application (not yet started).
        channels: the hub whose channels are served (share it with ``add_endpoint`` to
            reach SockJS sessions and EventSource pages alike).
        prefix: the URL prefix; no trailing slash.
        options: origins, hosts, ``authenticate``, ``max_sessions``, heartbeat and
            slow-consumer bounds, as for a SockJS endpoint (see the module docstring).
        allow: ``allow(principal, channel)``, may refuse a channel (403).
        retry_ms: the ``retry:`` of every event: how long the browser waits before it
            reconnects.

    Returns:
        The :class:`EventStream`, for its counters.
    """
    options = options or SockJSOptions()
    prefix = prefix.rstrip("/")
    if not prefix.startswith("/"):
        raise ValueError("prefix must start with '/'")
    if retry_ms < 1:
        raise ValueError("retry_ms must be at least 1")
    stream = EventStream(channels, prefix, options, allow, retry_ms)
    app.router.add_get(prefix + "/{channel:.+}", stream.handle)
    if EVENT_STREAMS not in app:
        app[EVENT_STREAMS] = []
        app.on_shutdown.append(_shutdown)
    app[EVENT_STREAMS].append(stream)
    return stream
