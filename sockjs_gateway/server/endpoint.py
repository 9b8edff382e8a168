"""``add_endpoint``: mount a SockJS endpoint, with all its routes, on an aiohttp app.

An app may hold any number of endpoints; each has its own options and its own
:class:`SessionRegistry`, kept on the :class:`Endpoint` (never module-global). Endpoints
are listed under :data:`ENDPOINTS` in the app, and an ``on_shutdown`` hook closes every
session with 1001 "Going away" when the app stops.
"""

from __future__ import annotations

import re

from aiohttp import web
from multidict import CIMultiDictProxy, MultiDict, MultiDictProxy

from ..handler import ConnectionInfo, Handler
from ..options import SockJSOptions
from ..protocol import replies
from ..protocol.transports import TRANSPORTS, TransportSpec
from . import http, static
from .registry import SessionRegistry
from .websocket import websocket

__all__ = ["Endpoint", "add_endpoint", "ENDPOINTS"]

#: Every endpoint mounted on an app, in the order they were added.
ENDPOINTS = web.AppKey("sockjs_gateway.endpoints", list["Endpoint"])

_IFRAME_NAME = re.compile(r"iframe[0-9A-Za-z_.\-]*\.html")
_STREAMING_HEADERS: replies.Headers = [("X-Accel-Buffering", "no")]
_NOSNIFF: replies.Headers = [("X-Content-Type-Options", "nosniff")]


class Endpoint:
    """One mounted SockJS endpoint: its options, its sessions, and ``broadcast``."""

    def __init__(self, handler: Handler, prefix: str, options: SockJSOptions) -> None:
        self.handler = handler
        self.prefix = prefix
        self.options = options
        self.registry = SessionRegistry(self, handler, options)
        self._iframe_page, self._iframe_etag = replies.iframe_page(options.sockjs_url)

    def broadcast(self, message: str) -> int:
        """Send ``message`` to every open session of this endpoint, encoding it once.

        Returns:
            The number of sessions it was queued for.
        """
        return self.registry.broadcast(message)

    @property
    def session_count(self) -> int:
        """How many sessions (open, or closed and still replaying) the endpoint holds."""
        return len(self.registry)

    # -- helpers shared by the transports ----------------------------------------------

    def session_headers(self, request: web.BaseRequest, spec: TransportSpec) -> replies.Headers:
        """Headers every request of a session carries: no caching, CORS for the XHR
        transports, JSESSIONID when ``cookie_needed``, no proxy buffering for streams."""
        headers = list(replies.NO_CACHE)
        if spec.cors:
            headers += replies.cors_headers(
                request.headers.get("Origin"),
                request.headers.get("Access-Control-Request-Headers"),
            )
        if self.options.cookie_needed:
            headers.append(replies.session_cookie(request.cookies.get("JSESSIONID")))
        if spec.streaming:
            headers += _STREAMING_HEADERS
        if spec.needs_callback:
            headers += _NOSNIFF
        return headers

    def connection_info(self, request: web.BaseRequest, transport: str) -> ConnectionInfo:
        """Snapshot the opening request for the session's handler."""
        return ConnectionInfo(
            remote=request.remote,
            headers=CIMultiDictProxy(request.headers.copy()),
            cookies=dict(request.cookies),
            query=MultiDictProxy(MultiDict(request.query)),
            path=request.path,
            transport=transport,
        )

    # -- routes --------------------------------------------------------------------------

    async def _greeting(self, request: web.Request) -> web.StreamResponse:
        if request.method != "GET":
            return static.method_not_allowed("GET")
        return static.greeting()

    async def _info(self, request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return static.preflight(request, "OPTIONS, GET")
        if request.method != "GET":
            return static.method_not_allowed("OPTIONS, GET")
        return static.info(
            request,
            websocket=self.options.enabled("websocket"),
            cookie_needed=self.options.cookie_needed,
        )

    async def _iframe(self, request: web.Request) -> web.StreamResponse:
        if _IFRAME_NAME.fullmatch(request.match_info["name"]) is None:
            raise web.HTTPNotFound()
        if request.method != "GET":
            return static.method_not_allowed("GET")
        return static.iframe(request, self._iframe_page, self._iframe_etag)

    async def _raw_websocket(self, request: web.Request) -> web.StreamResponse:
        if not self.options.enabled("raw-websocket"):
            raise web.HTTPNotFound()
        if request.method != "GET":
            return static.method_not_allowed("GET")
        return await websocket(request, self, "", raw=True)

    async def _session(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        server_id, session_id, name = info["server"], info["session"], info["transport"]
        if (
            "." in server_id
            or "." in session_id
            or len(session_id) > self.options.max_session_id_length
        ):
            raise web.HTTPNotFound()
        method = request.method
        if name == "websocket":
            if not self.options.enabled("websocket"):
                raise web.HTTPNotFound()
            if method != "GET":
                return static.method_not_allowed("GET")
            return await websocket(request, self, session_id, raw=False)
        upstream = name.endswith("_send")
        spec = TRANSPORTS.get(name[:-5] if upstream else name)
        if spec is None or not self.options.enabled(spec.name) or (upstream and not spec.has_send):
            raise web.HTTPNotFound()
        allowed = "POST" if upstream else spec.method
        if method == "OPTIONS" and spec.cors:
            return static.preflight(request, f"OPTIONS, {allowed}")
        if method != allowed:
            return static.method_not_allowed(f"OPTIONS, {allowed}" if spec.cors else allowed)
        if not upstream:
            return await http.receive(request, self, spec, session_id)
        if spec.needs_callback:
            return await http.jsonp_send(request, self, session_id, spec)
        return await http.xhr_send(request, self, session_id, spec)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register every route of the endpoint under its prefix."""
        prefix = self.prefix
        router.add_route("*", prefix or "/", self._greeting)
        if prefix:
            router.add_route("*", prefix + "/", self._greeting)
        router.add_route("*", prefix + "/info", self._info)
        router.add_route("*", prefix + "/websocket", self._raw_websocket)
        router.add_route("*", prefix + r"/{name:iframe[^/]*\.html}", self._iframe)
        router.add_route("*", prefix + "/{server}/{session}/{transport}", self._session)


async def _shutdown(app: web.Application) -> None:
    for endpoint in app[ENDPOINTS]:
        await endpoint.registry.shutdown()


def add_endpoint(
    app: web.Application,
    handler: Handler,
    *,
    prefix: str = "/sockjs",
    options: SockJSOptions | None = None,
) -> Endpoint:
    """Mount a SockJS endpoint for ``handler`` at ``prefix`` on ``app``.

    Args:
        app: the aiohttp application (not yet started).
        handler: the object whose ``on_open``/``on_message``/``on_close`` hooks run for
            every session of this endpoint.
        prefix: the URL prefix, e.g. ``"/echo"`` (sockjs-client connects to
            ``http://host/echo``); no trailing slash.
        options: the endpoint's settings; :class:`SockJSOptions` defaults otherwise.

    Returns:
        The :class:`Endpoint`, for ``broadcast`` and inspection.
    """
    prefix = prefix.rstrip("/")
    if prefix and not prefix.startswith("/"):
        raise ValueError("prefix must start with '/'")
    endpoint = Endpoint(handler, prefix, options or SockJSOptions())
    endpoint.add_routes(app.router)
    if ENDPOINTS not in app:
        app[ENDPOINTS] = []
        app.on_shutdown.append(_shutdown)
    app[ENDPOINTS].append(endpoint)
    return endpoint
