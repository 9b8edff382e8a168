"""Every knob of a SockJS endpoint, with its unit and default, in one frozen dataclass.

Defaults follow sockjs-node and Spring (25 s heartbeat, 5 s disconnect delay, 128 KiB
streaming responses) so that documentation written for those servers holds here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .protocol.transports import TRANSPORT_NAMES

__all__ = ["SockJSOptions", "DEFAULT_SOCKJS_URL"]

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
    #: Disabling ``websocket`` is reported in ``/info``.
    disabled_transports: frozenset[str] = field(default_factory=frozenset)
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

    def __post_init__(self) -> None:
        unknown = set(self.disabled_transports) - TRANSPORT_NAMES
        if unknown:
            raise ValueError(f"unknown transports in disabled_transports: {sorted(unknown)}")
        if self.heartbeat_delay <= 0 or self.disconnect_delay <= 0:
            raise ValueError("heartbeat_delay and disconnect_delay must be positive")
        if self.response_limit < 1 or self.max_message_bytes < 1:
            raise ValueError("response_limit and max_message_bytes must be positive")

    def enabled(self, transport: str) -> bool:
        """Whether the transport called ``transport`` is served."""
        return transport not in self.disabled_transports
