"""Every knob of the STOMP layer, with its unit and default, in one frozen dataclass.

Limits exist so that one client cannot grow the server's memory without bound; each one,
when crossed, ends that client's connection with an ERROR frame whose ``message`` names
the limit. The defaults follow Spring's STOMP support where it has one (64 KiB messages,
10 s heart-beats on stompjs' side, a 3x heart-beat tolerance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .._version import __version__
from .frames import VERSIONS, FrameLimits

__all__ = ["StompOptions", "UnknownAppDestination"]

#: What a SEND to an unmapped application destination gets: ``"error"`` (an ERROR frame,
#: then close) or ``"ignore"`` (dropped, as Spring does; logged, rate-limited).
UnknownAppDestination = Literal["error", "ignore"]


@dataclass(frozen=True, slots=True)
class StompOptions:
    """Settings of one STOMP broker and the connections it serves."""

    #: Versions offered in negotiation (STOMP 1.2, "Protocol Negotiation").
    versions: tuple[str, ...] = VERSIONS
    #: The ``server`` header of CONNECTED.
    server: str = f"sockjs_gateway/{__version__}"
    #: Milliseconds between the server's heart-beats it offers (first number of the
    #: CONNECTED ``heart-beat`` header); 0 offers none.
    heartbeat_send_ms: int = 10_000
    #: Milliseconds between client heart-beats the server asks for (second number); 0 asks
    #: for none and never disconnects a silent client.
    heartbeat_receive_ms: int = 10_000
    #: A client is disconnected once it has been silent for this many negotiated intervals.
    #: The spec asks for a margin; 3 is Spring's, and survives browsers that throttle timers
    #: in background tabs and polling transports that batch a beat late.
    heartbeat_tolerance: float = 3.0
    #: Seconds a connection may stay open without a successful CONNECT.
    connect_timeout: float = 30.0
    #: Destinations routed to application handlers (``@broker.message_mapping``).
    app_prefix: str = "/app/"
    #: Bytes of one frame (command, headers and body).
    max_frame_bytes: int = 64 * 1024
    #: Header lines per frame.
    max_headers: int = 64
    #: Bytes of one header line.
    max_header_bytes: int = 8 * 1024
    #: Live subscriptions per connection.
    max_subscriptions: int = 100
    #: Unacknowledged messages per ``client``/``client-individual`` subscription. A queue
    #: stops giving a full subscription messages (they wait for another consumer); a topic
    #: subscription that overflows is ended with an ERROR (a slow consumer).
    max_unacked: int = 1000
    #: Messages waiting in one ``/queue/`` for a consumer; a SEND beyond it gets an ERROR.
    max_queued: int = 10_000
    #: Bytes (bodies and user headers) of the messages the whole broker holds: waiting in
    #: queues, plus delivered to ``client``/``client-individual`` subscriptions and not yet
    #: acknowledged. A SEND (or server-side ``publish``) to a queue that would cross it gets
    #: an ERROR; a subscription whose unacknowledged messages would cross it is ended with
    #: an ERROR, as a slow consumer. Shared by every connection: budget it as memory.
    max_queued_bytes: int = 64 * 1024 * 1024
    #: Destinations known at once: queues (while they hold messages or consumers) plus
    #: topics and user queues (while they have subscribers). A SUBSCRIBE or queue SEND that
    #: would add one more gets an ERROR. An empty destination is forgotten at once.
    max_destinations: int = 10_000
    #: Transactions open at once per connection.
    max_transactions: int = 16
    #: SEND/ACK/NACK frames held by one open transaction.
    max_transaction_frames: int = 1000
    #: Bytes of frames (bodies and headers) held by all open transactions of one
    #: connection, until COMMIT or ABORT.
    max_transaction_bytes: int = 4 * 1024 * 1024
    #: A SEND to the application prefix that no ``message_mapping`` handles: ``"error"``
    #: ends the connection with an ERROR naming the destination; ``"ignore"`` drops it (its
    #: receipt is still sent), as Spring does, with a rate-limited log line.
    unknown_app_destination: UnknownAppDestination = "error"

    def __post_init__(self) -> None:
        if not self.versions or set(self.versions) - set(VERSIONS):
            raise ValueError(f"versions must be a non-empty subset of {VERSIONS}")
        if min(self.heartbeat_send_ms, self.heartbeat_receive_ms) < 0:
            raise ValueError("heart-beat intervals cannot be negative")
        if self.heartbeat_tolerance < 1 or self.connect_timeout <= 0:
            raise ValueError("heartbeat_tolerance must be >= 1 and connect_timeout positive")
        if not (self.app_prefix.startswith("/") and self.app_prefix.endswith("/")):
            raise ValueError("app_prefix must start and end with '/'")
        limits = (
            self.max_frame_bytes,
            self.max_headers,
            self.max_header_bytes,
            self.max_subscriptions,
            self.max_unacked,
            self.max_queued,
            self.max_transactions,
            self.max_transaction_frames,
            self.max_queued_bytes,
            self.max_destinations,
            self.max_transaction_bytes,
        )
        if min(limits) < 1:
            raise ValueError("every max_* limit must be at least 1")
        if self.unknown_app_destination not in ("error", "ignore"):
            raise ValueError(
                f"unknown_app_destination must be 'error' or 'ignore',"
                f" not {self.unknown_app_destination!r}"
            )

    @property
    def frame_limits(self) -> FrameLimits:
        """The codec's share of these settings."""
        return FrameLimits(self.max_frame_bytes, self.max_headers, self.max_header_bytes)
