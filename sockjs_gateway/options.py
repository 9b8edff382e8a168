"""Every knob of a SockJS endpoint, with its unit and default, in one frozen dataclass.

Defaults follow sockjs-node and Spring (25 s heartbeat, 5 s disconnect delay, 128 KiB
streaming responses) so that documentation written for those servers holds here too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .protocol.transports import TRANSPORT_NAMES

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["SockJSOptions", "DEFAULT_SOCKJS_URL", "Authenticate", "SlowConsumer", "Binding"]

#: ``async def authenticate(request) -> principal`` (or a plain ``def``): return any object
#: (None for anonymous) or raise an ``aiohttp.web.HTTPException`` (e.g. ``HTTPForbidden``)
#: to refuse.
Authenticate = Callable[["web.Request"], Awaitable[Any] | Any]
SlowConsumer = Literal["close", "drop-oldest", "drop-newest"]
Binding = Literal["none", "ip", "principal"]

#: Where the iframe page loads sockjs-client from unless ``sockjs_url`` says otherwise.
DEFAULT_SOCKJS_URL = "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js"


@dataclass(frozen=True, slots=True)
class SockJSOptions:
    """Settings of one endpoint. Every field has a safe default."""

    #: Seconds of outbound silence after which an ``h`` frame is sent, on every transport
    #: (raw ``/websocket`` gets WebSocket pings instead, as it has no SockJS framing).
    heartbeat_delay: float = 25.0
    #: Seconds a session may have no receiving connection before it is closed and forgotten.
    #: Also how long a closed session keeps replaying its close frame.
    disconnect_delay: float = 5.0
    #: Bytes after which a streaming response (xhr-streaming, eventsource, htmlfile) is
    #: ended so the browser can free it; the client opens the next one.
    response_limit: int = 128 * 1024
    #: Advertise ``cookie_needed`` in ``/info`` and set ``JSESSIONID`` on session requests,
    #: for load balancers that stick on that cookie.
    cookie_needed: bool = False
    #: Transports this endpoint refuses (404), by name: ``websocket``, ``raw-websocket``,
    #: ``xhr-polling``, ``xhr-streaming``, ``eventsource``, ``htmlfile``, ``jsonp-polling``.
    #: Disabling ``websocket`` is reported in ``/info``. Any iterable of names (a set, a
    #: list) or one name as a string; stored as a ``frozenset``. Unknown names raise.
    disabled_transports: Iterable[str] = field(default_factory=frozenset)
    #: The sockjs-client script the iframe page loads (iframe-based transports need it
    #: on the server's origin; point it at a copy you serve to avoid a CDN).
    sockjs_url: str = DEFAULT_SOCKJS_URL
    #: Longest accepted session id; longer ids get 404 (sockjs-client uses 8 characters).
    max_session_id_length: int = 128
    #: Largest ``xhr_send``/``jsonp_send`` body and WebSocket message, in bytes. A larger
    #: body gets 413 "Payload too large." before it is read; a larger WebSocket message
    #: closes the connection with 1009. The default admits a 1 MiB message with room for
    #: JSON escaping.
    max_message_bytes: int = 4 * 1024 * 1024
    #: Offer permessage-deflate to WebSocket clients that ask for it. Off by default, as in
    #: sockjs-node: SockJS messages are small, and a deflate context costs every session
    #: tens of kilobytes and every message CPU. Compressed sessions run on aiohttp's
    #: ``WebSocketResponse``, the others on the server's own lighter connection.
    websocket_compression: bool = False
    #: Origins (page origins, as browsers send them) allowed to use the endpoint: ``()``
    #: means the server's own origin only; ``("*",)`` every origin; otherwise patterns such
    #: as ``"https://*.example.com"`` (``*``: any run of characters but ``/``). A request
    #: from another origin gets 403. htmlfile, jsonp and the iframe page carry no Origin,
    #: so unless ``"*"`` is listed they need a ``Referer`` from an allowed origin.
    allowed_origins: tuple[str, ...] = ()
    #: ``Host`` names the endpoint answers to (no ports; ``*`` matches any run of
    #: characters but ``:``, e.g. ``"*.example.com"``). A request naming another host gets
    #: 421 "Host not allowed.": the defence against DNS rebinding, which the origin check
    #: cannot give (a rebound page's Origin matches its Host). ``()``, the default, allows
    #: every Host so that existing apps keep working; set it to the names your pages use.
    #: ``python -m sockjs_gateway serve`` checks Host for the whole app by default.
    allowed_hosts: tuple[str, ...] = ()
    #: Sessions one endpoint holds at most (open, or closed and replaying); past it a new
    #: session gets 503 "Too many sessions.". An idle session costs roughly 10-20 KB.
    max_sessions: int = 25_000
    #: Seconds an ``xhr_send``/``jsonp_send`` body may take to arrive, counted from when
    #: the server starts reading it (not while it waits for the handler to have room). A
    #: client that trickles its body gets 408 "Request body too slow." and its connection
    #: is closed.
    body_timeout: float = 10.0
    #: Messages one session may have queued for its client before the slow-consumer policy
    #: applies (Spring's ``httpMessageCacheSize`` is 100; a burst of broadcasts needs more).
    max_queued_messages: int = 1000
    #: Bytes (encoded) one session may have queued for its client before the policy applies.
    max_queued_bytes: int = 4 * 1024 * 1024
    #: Seconds a write to a client may stay stuck (the client does not read) before the
    #: policy applies. Enforced by a timer, not only when the next message is sent.
    send_time_limit: float = 10.0
    #: What happens to a client that does not keep up: ``"close"`` it with 4500 "Slow
    #: consumer" (queued messages are dropped, the connection is cut if stuck),
    #: ``"drop-oldest"`` queued messages, or ``"drop-newest"`` (the one being sent).
    slow_consumer: SlowConsumer = "close"
    #: Messages received but not yet handled, per session; past it the request or
    #: WebSocket bringing more waits for the handler (backpressure, not buffering).
    max_inbound_messages: int = 100
    #: Bytes (as sent on the wire) of messages received but not yet handled, per session;
    #: past it, the same backpressure. One message is always admitted into an empty queue,
    #: so a session holds at most this plus ``max_message_bytes``.
    max_inbound_bytes: int = 1024 * 1024
    #: The same, summed over every session of the endpoint: past it, every connection that
    #: brings more messages waits until handlers catch up.
    max_inbound_bytes_total: int = 64 * 1024 * 1024
    #: Runs on the opening request of every session (any transport); see
    #: :data:`Authenticate`. The result is ``session.principal``.
    authenticate: Authenticate | None = None
    #: Tie an HTTP session to its opener: ``"ip"`` (the client address, never the port:
    #: behind a proxy, make aiohttp see the real client address) or ``"principal"`` (runs
    #: ``authenticate`` on every request). A request that does not match is answered as
    #: if the session did not exist (404).
    bind_session: Binding = "none"
    #: Seconds the server keeps answering after it told every session 1001 "Going away" at
    #: shutdown (``python -m sockjs_gateway serve``, the gunicorn worker, or
    #: :func:`~sockjs_gateway.drain`), so a polling client's next poll still gets the close
    #: frame. It ends early once every client has its frame, except on a node that relays
    #: (it also answers for other nodes' clients); capped at ``disconnect_delay``, after
    #: which a closed session is forgotten anyway.
    shutdown_grace: float = 3.0
    #: With a backplane that can (memory, Redis), a request for a session owned by another
    #: node is relayed there, so HTTP fallbacks need no sticky load balancer (see
    #: docs/deployment.md). ``False`` for sticky deployments: saves a directory claim per
    #: new HTTP session. Off whenever ``bind_session`` is not ``"none"``.
    relay: bool = True
    #: Seconds without any word from a node this one relays with before its relays are
    #: given up: a relayed receiving request ends with ``c[1011,"Session owner
    #: unreachable"]``, a relayed send gets 503, a remote receiver is interrupted (1002).
    relay_timeout: float = 3.0
    #: Bytes an owner may have sent to a relaying node and not yet had acknowledged as
    #: written; past it the remote receiver is paused like a stuck local write.
    relay_window: int = 128 * 1024
    #: Relayed requests one endpoint may have in progress on one node, both ways
    #: (relayed from here and served here); past it 503 "Too many relayed requests.".
    #: Bounds relayed bodies in flight to this many times ``max_message_bytes``.
    max_relays: int = 1000

    def __post_init__(self) -> None:
        names = self.disabled_transports
        # A string is one name: iterating it would disable "w", "e", "b", ...
        names = frozenset((names,) if isinstance(names, str) else names)
        object.__setattr__(self, "disabled_transports", names)
        unknown = names - TRANSPORT_NAMES
        if unknown:
            raise ValueError(
                f"unknown transports in disabled_transports: {sorted(unknown)} "
                f"(known: {sorted(TRANSPORT_NAMES)})"
            )
        if self.shutdown_grace < 0:
            raise ValueError("shutdown_grace must not be negative")
        if self.heartbeat_delay <= 0 or self.disconnect_delay <= 0:
            raise ValueError("heartbeat_delay and disconnect_delay must be positive")
        if self.response_limit < 1 or self.max_message_bytes < 1:
            raise ValueError("response_limit and max_message_bytes must be positive")
        if isinstance(self.allowed_origins, str):
            raise ValueError("allowed_origins is a tuple of patterns, not a string")
        if isinstance(self.allowed_hosts, str):
            raise ValueError("allowed_hosts is a tuple of host names, not a string")
        if (
            min(
                self.max_sessions,
                self.max_queued_messages,
                self.max_queued_bytes,
                self.max_inbound_messages,
                self.max_inbound_bytes,
                self.max_inbound_bytes_total,
            )
            < 1
            or self.send_time_limit <= 0
            or self.body_timeout <= 0
        ):
            raise ValueError("session, queue and time limits must be positive")
        if self.slow_consumer not in ("close", "drop-oldest", "drop-newest"):
            raise ValueError(f"unknown slow_consumer policy {self.slow_consumer!r}")
        if self.relay_timeout <= 0 or self.relay_window < 1 or self.max_relays < 1:
            raise ValueError("relay_timeout, relay_window and max_relays must be positive")
        if self.bind_session not in ("none", "ip", "principal"):
            raise ValueError(f"unknown bind_session {self.bind_session!r}")
        if self.bind_session == "principal" and self.authenticate is None:
            raise ValueError('bind_session="principal" needs an authenticate hook')

    @property
    def grace(self) -> float:
        """The shutdown grace actually applied: ``shutdown_grace``, at most
        ``disconnect_delay``."""
        return min(self.shutdown_grace, self.disconnect_delay)

    def enabled(self, transport: str) -> bool:
        """Whether the transport called ``transport`` is served."""
        return transport not in self.disabled_transports
