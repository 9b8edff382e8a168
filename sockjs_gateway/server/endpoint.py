"""``add_endpoint``: mount a SockJS endpoint, with all its routes, on an aiohttp app.

An app may hold any number of endpoints; each has its own options and its own
:class:`SessionRegistry`, kept on the :class:`Endpoint` (never module-global). Endpoints
are listed under :data:`ENDPOINTS` in the app, and an ``on_shutdown`` hook closes every
session with 1001 "Going away" when the app stops.

With a backplane (``add_endpoint(..., backplane=...)``), ``broadcast`` reaches the open
sessions of this endpoint on every node of the cluster, each once: the endpoint subscribes
to the channel ``sockjs:<prefix>`` and its own sessions get the message synchronously
inside ``publish`` (see :mod:`sockjs_gateway.backplane.base`).
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from logging import INFO
from typing import Any, cast

from aiohttp import web

from ..backplane.base import Backplane, Channel
from ..backplane.lifecycle import run_with_app
from ..handler import Handler, check_handler, check_hook
from ..history import ChannelHub, Channels, Position
from ..info import ConnectionInfo
from ..logs import refusal
from ..options import SockJSOptions
from ..protocol import replies
from ..protocol.hosts import HostPolicy
from ..protocol.origins import OriginPolicy, Verdict, origin_of_url, request_scheme
from ..protocol.transports import TRANSPORTS, TransportSpec, valid_callback
from . import http, relay_client, static
from .channels import SessionChannels
from .hosts import HOST_NOT_ALLOWED
from .registry import GOING_AWAY, EndpointStats, SessionRegistry
from .relay import Relay
from .session import Session
from .websocket import websocket

__all__ = [
    "Endpoint",
    "add_endpoint",
    "drain",
    "ENDPOINTS",
    "ORIGIN_NOT_ALLOWED",
    "HOST_NOT_ALLOWED",
    "SHUTTING_DOWN",
    "TOO_MANY_SESSIONS",
    "SessionRoute",
    "session_routes",
    "authenticate",
]

#: Body of the 403 answer to a request from an origin the endpoint does not allow.
ORIGIN_NOT_ALLOWED = "Origin not allowed."
#: Body of the 503 answer to a new session past ``max_sessions``.
TOO_MANY_SESSIONS = "Too many sessions."
#: Body of the 503 answer to a new session during the shutdown grace.
SHUTTING_DOWN = "Server shutting down."
#: How often the shutdown grace checks whether every client has its close frame.
_DRAIN_CHECK = 0.05

#: Every endpoint mounted on an app, in the order they were added.
ENDPOINTS = web.AppKey("sockjs_gateway.endpoints", list["Endpoint"])

_IFRAME_NAME = re.compile(r"iframe[0-9A-Za-z_.\-]*\.html")
# Server and session ids: printable ASCII but "." and "/" (sockjs-client uses [a-z0-9]).
_ID = re.compile(r"[\x20-\x2d\x30-\x7e]+")
_STREAMING_HEADERS: replies.Headers = [("X-Accel-Buffering", "no")]
_NOSNIFF: replies.Headers = [("X-Content-Type-Options", "nosniff")]
(_NO_CACHE,) = replies.NO_CACHE
_ANY_ORIGIN = ("Access-Control-Allow-Origin", "*")
_WITH_CREDENTIALS = ("Access-Control-Allow-Credentials", "true")
_VARY_ORIGIN = ("Vary", "Origin")


class Endpoint:
    """One mounted SockJS endpoint: its options, its sessions, and ``broadcast``."""

    def __init__(
        self,
        handler: Handler,
        prefix: str,
        options: SockJSOptions,
        backplane: Backplane | None = None,
        channels: ChannelHub | None = None,
    ) -> None:
        self.handler = handler
        self.prefix = prefix
        self.options = options
        self.registry = SessionRegistry(self, handler, options)
        #: The endpoint's counters (see :mod:`sockjs_gateway.metrics`).
        self.stats = self.registry.stats
        #: Which page origins may use the endpoint.
        self.origins = OriginPolicy(options.allowed_origins)
        #: Which ``Host`` names the endpoint answers to.
        self.hosts = HostPolicy(options.allowed_hosts)
        self._iframe_page, self._iframe_etag = replies.iframe_page(options.sockjs_url)
        # Worked out once, not on every request of every session: the session routes this
        # endpoint serves, and whether any check can refuse.
        self._routes = session_routes(options)
        self._open_to_all = self.hosts.any and self.origins.any
        self._bound = options.bind_session != "none"
        #: The bus to the other nodes, if any (see :meth:`use_backplane`).
        self.backplane: Backplane | None = None
        self._channel: Channel | None = None
        #: Relays requests of sessions owned by other nodes (see :mod:`.relay`).
        self.relay: Relay | None = None
        if backplane is not None:
            self.use_backplane(backplane)
        #: True once :meth:`drain` began: new sessions are refused with 503.
        self.draining = False
        self._hub: ChannelHub | None = channels
        self._channels: SessionChannels | None = None

    @property
    def channels(self) -> SessionChannels:
        """Named channels with history for this endpoint's sessions (see
        :mod:`sockjs_gateway.server.channels`); made on first use, over the hub given to
        :func:`add_endpoint` or a private in-memory one."""
        if self._channels is None:
            if self._hub is None:
                self._hub = Channels()
            self._channels = SessionChannels(self.registry, self._hub)
        return self._channels

    @property
    def _history(self) -> ChannelHub | None:
        """The hub whose counters the metrics route reads, once there is one."""
        return self._hub

    def publish(self, channel: str, text: str) -> Position | None:
        """Publish ``text`` to ``channel``: retained in its history and sent to every
        session subscribed to it (``session.subscribe``), on every node with a Redis hub;
        returns its position when known at once (in memory)."""
        return self.channels.publish(channel, text)

    def broadcast(self, message: str) -> int:
        """Send ``message`` to every open session of this endpoint, encoding it once; with a
        backplane, to those on every node too. Never waits.

        Returns:
            The number of sessions of *this node* it was queued for.
        """
        if self._channel is None:
            return self.registry.broadcast(message)
        return self._channel.publish(message.encode("utf-8", "surrogatepass"))

    def use_backplane(self, backplane: Backplane) -> None:
        """Broadcast through ``backplane`` from now on (the caller starts and closes it;
        ``add_endpoint`` ties it to the app)."""
        if self._channel is not None:
            self._channel.close()
        self.backplane = backplane
        self._channel = Channel(backplane, f"sockjs:{self.prefix or '/'}", self._receive)
        if self.relay is not None:
            self.relay.close()
            self.relay = self.registry.on_forget = None
        directory = getattr(backplane, "directory", None)
        if directory is not None and self.options.relay and not self._bound:
            from .relay_owner import install

            self.relay = Relay(self, backplane, directory)
            install(self.relay)
            self.registry.on_forget = self.relay.forgotten

    def _receive(self, payload: bytes) -> int:
        return self.registry.broadcast(payload.decode("utf-8", "surrogatepass"))

    async def drain(self) -> None:
        """Close every session with 1001 "Going away", then keep answering for up to
        ``options.grace`` seconds, until every client has taken its close frame.

        A polling client (xhr-polling, jsonp-polling) is between two polls most of the
        time: the close frame waits for its next poll, which must still find a listener.
        Stop the listener only after this returns. New sessions get 503 meanwhile.

        A node that relays (several nodes or workers, no sticky sessions) also answers for
        the sessions of the others, which drain at the same time: the next poll of one of
        theirs may come here. It cannot know when the last of those clients took its
        frame, so it keeps answering for the whole grace.
        """
        self.draining = True
        registry = self.registry
        for session in registry:
            if not session.closed:
                registry.close(session, *GOING_AWAY)
        if self.relay is not None:
            await asyncio.sleep(self.options.grace)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.grace
        # No event says "this client took its close frame": look again every 50 ms.
        while loop.time() < deadline and any(_waiting(s) for s in registry):  # noqa: ASYNC110
            await asyncio.sleep(_DRAIN_CHECK)

    @property
    def session_count(self) -> int:
        """How many sessions (open, or closed and still replaying) the endpoint holds."""
        return len(self.registry)

    # -- helpers shared by the transports ----------------------------------------------

    def session_headers(
        self, request: web.BaseRequest, spec: TransportSpec, content_type: str
    ) -> replies.Headers:
        """Headers of a session's response of ``content_type``: no caching, CORS for the
        XHR transports, JSESSIONID when ``cookie_needed``, no proxy buffering for streams,
        ``nosniff`` for the callback transports. Every request of a session builds them,
        so the fixed parts are prebuilt."""
        if spec.cors:
            request_headers = request.headers
            origin = request_headers.get("Origin")
            # replies.cors_headers, inlined (every poll and send pays for it)
            if origin:
                headers = [
                    ("Content-Type", content_type),
                    _NO_CACHE,
                    ("Access-Control-Allow-Origin", origin),
                    _WITH_CREDENTIALS,
                    _VARY_ORIGIN,
                ]
            else:
                headers = [("Content-Type", content_type), _NO_CACHE, _ANY_ORIGIN]
            allow = request_headers.get("Access-Control-Request-Headers")
            if allow:
                headers.append(("Access-Control-Allow-Headers", allow))
        else:
            headers = [("Content-Type", content_type), _NO_CACHE]
        if self.options.cookie_needed:
            headers.append(replies.session_cookie(request.cookies.get("JSESSIONID")))
        if spec.streaming:
            headers += _STREAMING_HEADERS
        if spec.needs_callback:
            headers += _NOSNIFF
        return headers

    def connection_info(self, request: web.BaseRequest, transport: str) -> ConnectionInfo:
        """Snapshot the opening request for the session's handler.

        aiohttp's headers, cookies and query of a request are already immutable views
        that never change, so the snapshot shares them instead of copying (a copy per
        session cost idle WebSocket sessions about a kilobyte each).
        """
        return ConnectionInfo(
            remote=request.remote,
            headers=request.headers,
            cookies=request.cookies,
            query=request.query,
            path=request.path,
            transport=transport,
        )

    # -- routes --------------------------------------------------------------------------

    async def _greeting(self, request: web.Request) -> web.StreamResponse:
        if request.method != "GET":
            return static.method_not_allowed("GET")
        return static.greeting()

    async def _info(self, request: web.Request) -> web.StreamResponse:
        refused = self._check_origin(request)
        if refused is not None:
            return refused
        if request.method == "OPTIONS":
            return static.preflight(request, "OPTIONS, GET")
        if request.method != "GET":
            return static.method_not_allowed("OPTIONS, GET")
        # /info carries the page's cookies: a client that will be refused learns it here,
        # once, instead of after trying every transport (sockjs-client closes with 1002).
        await self._authenticate(request)
        return static.info(
            request,
            websocket=self.options.enabled("websocket"),
            cookie_needed=self.options.cookie_needed,
            origins=self.origins.advertised(),
        )

    async def _iframe(self, request: web.Request) -> web.StreamResponse:
        if _IFRAME_NAME.fullmatch(request.match_info["name"]) is None:
            raise web.HTTPNotFound()
        if request.method != "GET":
            return static.method_not_allowed("GET")
        refused = self._check_origin(request, proof_needed=True)
        if refused is not None:
            return refused
        response = static.iframe(request, self._iframe_page, self._iframe_etag)
        if self.origins.same_origin_only:
            response.headers["X-Frame-Options"] = "SAMEORIGIN"
        return response

    async def _raw_websocket(self, request: web.Request) -> web.StreamResponse:
        if not self.options.enabled("raw-websocket"):
            raise web.HTTPNotFound()
        if request.method != "GET":
            return static.method_not_allowed("GET")
        return await self._open_websocket(request, "", raw=True)

    async def _open_websocket(
        self, request: web.Request, session_id: str, *, raw: bool
    ) -> web.StreamResponse:
        # Not ``or``: up to aiohttp 3.11 a Response is a mapping, and empty means false.
        refused = self._check_origin(request)
        if refused is None:
            refused = self._check_capacity(request)
        if refused is not None:
            return refused
        principal = await self._authenticate(request)
        return await websocket(request, self, session_id, raw=raw, principal=principal)

    async def _session(self, request: web.Request) -> web.StreamResponse:
        """``/<server>/<session>/<transport>``: every request of an HTTP session (and a
        SockJS WebSocket). The ids and the route, the checks that need no session, the
        session (here, relayed to its node, or bound to someone else), then the route's
        handler. The steps that only refusals take are methods; the path every poll and
        send takes stays inline."""
        info = request.match_info
        server_id, session_id = info["server"], info["session"]
        limit = self.options.max_session_id_length
        # One match for both ids: _ID is one character class and the route never gives
        # an empty segment, so both are valid exactly when their concatenation is.
        if (
            len(session_id) > limit
            or len(server_id) > limit
            or _ID.fullmatch(server_id + session_id) is None
        ):
            raise web.HTTPNotFound()
        route = self._routes.get(info["transport"])
        if route is None:
            return await self._session_websocket(request, session_id)
        if not self._open_to_all or request.method != route.method or route.callback:
            refused = self._refuse(request, route)
            if refused is not None:
                return refused
        callback = _callback(request) if route.callback else ""
        session = self.registry.get(session_id)
        if session is None and self.relay is not None:
            relayed = await relay_client.route(
                self.relay, request, route.spec, route.upstream, callback, session_id
            )
            if relayed is not None:
                return relayed
            session = self.registry.get(session_id)  # opened by another request meanwhile?
        if session is not None and self._bound and not await self._matches(request, session):
            raise web.HTTPNotFound()  # the id is someone else's: 404, as for an unknown send
        if session is None:
            if route.upstream:
                raise web.HTTPNotFound()  # a send never opens a session
            return await self._open(request, route, session_id, callback)
        answer = route.serve(request, self, route.spec, session, callback)
        if type(answer) is web.Response:  # not isinstance: that is an ABC check
            return answer
        return await cast("Awaitable[web.StreamResponse]", answer)

    def _refuse(self, request: web.Request, route: SessionRoute) -> web.Response | None:
        """The answer to a request refused before its session is looked up: its host or
        origin (unless every one is allowed), another method than the route's (OPTIONS:
        the CORS preflight), a missing or invalid callback."""
        if not self._open_to_all:
            refused = self._check_origin(request, proof_needed=route.spec.needs_callback)
            if refused is not None:
                return refused
        method = request.method
        if method != route.method:
            if method == "OPTIONS" and route.spec.cors:
                return static.preflight(request, route.allow)
            return static.method_not_allowed(route.allow)
        if route.callback:
            callback = _callback(request)
            if not callback:
                return static.text_response(500, '"callback" parameter required')
            if not valid_callback(callback):
                return static.text_response(500, 'invalid "callback" parameter')
        return None

    async def _open(
        self, request: web.Request, route: SessionRoute, session_id: str, callback: str
    ) -> web.StreamResponse:
        """A new session, unless the endpoint is full or draining, or ``authenticate``
        refuses; then its first response."""
        refused = self._check_capacity(request)
        if refused is not None:
            return refused
        principal = await self._authenticate(request)
        spec = route.spec
        session = self.registry.create(
            session_id, self.connection_info(request, spec.name), principal=principal
        )
        answer = http.downstream(request, self, spec, session, callback)
        if type(answer) is web.Response:
            return answer
        return await cast("Awaitable[web.StreamResponse]", answer)

    async def _session_websocket(self, request: web.Request, session_id: str) -> web.StreamResponse:
        """A session URL no HTTP route serves: a SockJS WebSocket, else 404."""
        if not self.options.enabled("websocket") or request.match_info["transport"] != "websocket":
            raise web.HTTPNotFound()
        if request.method != "GET":
            return static.method_not_allowed("GET")
        return await self._open_websocket(request, session_id, raw=False)

    # -- policies ----------------------------------------------------------------------

    def _check_origin(
        self, request: web.Request, *, proof_needed: bool = False
    ) -> web.Response | None:
        """421 for a ``Host`` the endpoint does not serve; 403 for a request from an
        origin it does not allow.

        ``proof_needed``: the transport carries no ``Origin`` (htmlfile, jsonp, iframe),
        so the ``Referer`` must show an allowed page unless every origin is allowed.
        """
        headers = request.headers
        host = headers.get("Host")
        if not self.hosts.allows(host):
            self.stats.refused["host"] += 1
            refusal(
                "host",
                "Host %r refused on %s from %s (allowed_hosts: %s)",
                host,
                request.path,
                request.remote,
                self.hosts.described(),
            )
            return static.text_response(421, HOST_NOT_ALLOWED)
        origin = headers.get("Origin")
        if origin is None and proof_needed:
            origin = origin_of_url(headers.get("Referer"))
        scheme = request_scheme(
            request.scheme, headers.get("X-Forwarded-Proto"), headers.get("Forwarded")
        )
        verdict = self.origins.check(origin, request.host, scheme)
        if verdict is Verdict.DENY or (
            verdict is Verdict.UNKNOWN and proof_needed and not self.origins.any
        ):
            self.stats.refused["origin"] += 1
            allowed = self.origins.patterns or (f"same origin: {scheme}://{request.host}",)
            refusal(
                "origin",
                "Origin %r refused on %s from %s (allowed_origins: %s)",
                origin,
                request.path,
                request.remote,
                ", ".join(allowed),
            )
            return static.text_response(403, ORIGIN_NOT_ALLOWED)
        return None

    def _check_capacity(self, request: web.Request) -> web.Response | None:
        if self.draining:
            refusal(
                "shutdown", "New session refused (shutting down): %s", _who(request), level=INFO
            )
            return static.text_response(503, SHUTTING_DOWN)
        if self.registry.full:
            self.stats.refused["capacity"] += 1
            refusal(
                "capacity",
                "New session refused, max_sessions (%d) reached: %s",
                self.options.max_sessions,
                _who(request),
            )
            return static.text_response(503, TOO_MANY_SESSIONS)
        return None

    async def _authenticate(self, request: web.Request) -> Any:
        return await authenticate(self.options, self.stats, request, "auth", _who(request))

    async def _matches(self, request: web.Request, session: Session) -> bool:
        """Whether ``request`` may use ``session`` under ``bind_session``."""
        binding = self.options.bind_session
        if binding == "ip":
            return request.remote == session.info.remote
        if binding == "principal":
            try:
                return bool(await self._authenticate(request) == session.principal)
            except web.HTTPException:
                return False
        return True

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register every route of the endpoint under its prefix."""
        for path, handler in self._url_table():
            router.add_route("*", path, handler)

    def _url_table(self) -> list[tuple[str, _Handler]]:
        """The endpoint's URLs and what answers each, in the order aiohttp tries them.

        Ids may hold any printable character but "/" and "." (aiohttp's default segment
        pattern would also refuse braces). No two routes match the same path, so their
        order only decides how many aiohttp tries: the session route, which every request
        of a session takes, comes first (aiohttp files it under the prefix with the
        greeting's two, and tries them in order; last, each of its requests tried both).
        """
        prefix = self.prefix
        rows: list[tuple[str, _Handler]] = [
            (prefix + "/{server:[^/]+}/{session:[^/]+}/{transport:[^/]+}", self._session),
            (prefix or "/", self._greeting),
        ]
        if prefix:
            rows.append((prefix + "/", self._greeting))
        rows += [
            (prefix + "/info", self._info),
            (prefix + "/websocket", self._raw_websocket),
            (prefix + r"/{name:iframe[^/]*\.html}", self._iframe),
        ]
        return rows


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class SessionRoute:
    """One row of an endpoint's session routes: ``/<server>/<session>/<segment>``."""

    spec: TransportSpec  #: the transport
    upstream: bool  #: client→server (``xhr_send``, ``jsonp_send``): never opens a session
    method: str  #: the one method it serves
    allow: str  #: its ``Allow`` header (OPTIONS too where CORS preflights are answered)
    callback: bool  #: takes the ``c`` (or ``callback``) query parameter
    serve: http.Serve  #: :func:`~.http.downstream` or :func:`~.http.upstream`


def session_routes(options: SockJSOptions) -> dict[str, SessionRoute]:
    """The session routes of the transports ``options`` enable, by last URL segment
    (``xhr``, ``xhr_send``, ...): a transport's own segment is its downstream half, and
    ``<segment>_send`` its upstream half if it has one."""

    def row(spec: TransportSpec, method: str, *, up: bool) -> SessionRoute:
        allow = f"OPTIONS, {method}" if spec.cors else method
        callback = spec.needs_callback and not up
        serve = http.upstream if up else http.downstream
        return SessionRoute(spec, up, method, allow, callback, serve)

    routes: dict[str, SessionRoute] = {}
    for spec in TRANSPORTS.values():
        if options.enabled(spec.name):
            routes[spec.suffix] = row(spec, spec.method, up=False)
            if spec.has_send:
                routes[spec.suffix + "_send"] = row(spec, "POST", up=True)
    return routes


def _callback(request: web.Request) -> str:
    """The callback a jsonp or htmlfile request names ("" if none)."""
    query = request.query
    return query.get("c") or query.get("callback") or ""


def _waiting(session: Session) -> bool:
    """Whether ``session`` still has frames for its client, or a receiver writing them."""
    return session.machine.has_frames() or session.receiver is not None


async def drain(app: web.Application) -> None:
    """Run :meth:`Endpoint.drain` on every endpoint of ``app`` at once.

    Call it before stopping the listener (``runner.cleanup()``), so that clients between
    two polls still get ``c[1001,"Going away"]``; ``python -m sockjs_gateway serve`` and
    :class:`sockjs_gateway.worker.GunicornWorker` do.
    """
    await asyncio.gather(*(endpoint.drain() for endpoint in app.get(ENDPOINTS, ())))


async def authenticate(
    options: SockJSOptions, stats: EndpointStats, request: web.Request, key: str, who: str
) -> Any:
    """The principal ``options.authenticate`` gives ``request`` (None without the hook).
    A refusal (the ``HTTPException`` it raises) is counted, logged under ``key`` as
    ``authenticate refused <who> with <status>``, and raised on to aiohttp."""
    hook = options.authenticate
    if hook is None:
        return None
    try:
        principal = hook(request)
        return await principal if inspect.isawaitable(principal) else principal
    except web.HTTPException as refused:
        stats.refused["auth"] += 1
        refusal(key, "authenticate refused %s with %d", who, refused.status)
        raise


def _who(request: web.Request) -> str:
    """The request, its session and its client, for a log line."""
    session = request.match_info.get("session")
    where = f"{request.method} {request.path}"
    if session is not None:
        where += f" (session {session!r})"
    return f"{where} from {request.remote}"


async def _shutdown(app: web.Application) -> None:
    for endpoint in app[ENDPOINTS]:
        await endpoint.registry.shutdown()


def add_endpoint(
    app: web.Application,
    handler: Handler,
    *,
    prefix: str = "/sockjs",
    options: SockJSOptions | None = None,
    backplane: Backplane | None = None,
    channels: ChannelHub | None = None,
) -> Endpoint:
    """Mount a SockJS endpoint for ``handler`` at ``prefix`` on ``app``.

    Args:
        app: the aiohttp application (not yet started).
        handler: the object whose ``on_open``/``on_message``/``on_close`` hooks run for
            every session of this endpoint.
        prefix: the URL prefix, e.g. ``"/echo"`` (sockjs-client connects to
            ``http://host/echo``); no trailing slash.
        options: the endpoint's settings; :class:`SockJSOptions` defaults otherwise.
        backplane: makes ``broadcast`` reach this endpoint's sessions on every node (e.g. a
            :class:`~sockjs_gateway.backplane.RedisBackplane`); it starts and closes with
            ``app``. Without one, ``broadcast`` stays in this process.
        channels: the channel hub behind ``endpoint.publish`` and ``session.subscribe``,
            to share one with other endpoints and event streams; a private in-memory one
            is made on first use otherwise.

    Returns:
        The :class:`Endpoint`, for ``broadcast`` and inspection.

    Raises:
        TypeError: ``handler`` is not an object with the three hooks, or
            ``options.authenticate`` cannot be called with a request.
    """
    check_handler(handler)
    options = options or SockJSOptions()
    if options.authenticate is not None:
        check_hook("authenticate", options.authenticate, ("request",))
    prefix = prefix.rstrip("/")
    if prefix and not prefix.startswith("/"):
        raise ValueError("prefix must start with '/'")
    if any(other.prefix == prefix for other in app.get(ENDPOINTS, ())):
        raise ValueError(f"an endpoint is already mounted at {prefix or '/'!r} on this app")
    endpoint = Endpoint(handler, prefix, options, backplane, channels)
    endpoint.add_routes(app.router)
    if backplane is not None:
        run_with_app(app, backplane)
    if ENDPOINTS not in app:
        app[ENDPOINTS] = []
        app.on_shutdown.append(_shutdown)
    app[ENDPOINTS].append(endpoint)
    return endpoint
