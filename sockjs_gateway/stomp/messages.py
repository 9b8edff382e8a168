"""What travels through the broker (:class:`Payload`) and what an application handler
receives (:class:`AppMessage`).

A payload is only user headers and a body, the same for every receiver: each MESSAGE frame
adds its own ``subscription``, ``message-id`` and ``ack``. Being plain strings and bytes,
it is what a future backplane would carry between nodes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from ..exceptions import LocalProtocolError

__all__ = ["Payload", "AppMessage", "MessageHandler", "Headers", "RESERVED_HEADERS"]

#: Headers as a mapping or as pairs (pairs allow repeats).
Headers = Mapping[str, str] | Iterable[tuple[str, str]]
#: An application handler for one ``/app/…`` destination; may be async.
MessageHandler = Callable[["AppMessage"], Awaitable[None] | None]
#: SEND headers the broker owns; every other header is passed on to subscribers.
RESERVED_HEADERS = frozenset(
    {"destination", "receipt", "transaction", "content-length", "message-id", "subscription", "ack"}
)


@dataclass(frozen=True, slots=True)
class Payload:
    """User headers and body of one message."""

    headers: tuple[tuple[str, str], ...]
    body: bytes

    @classmethod
    def make(cls, body: str | bytes, headers: Headers = ()) -> Payload:
        """A payload from application code, checked now so that delivery cannot fail later.

        Raises:
            LocalProtocolError: the body is not UTF-8 (SockJS carries text only), or a
                header name is empty or a header holds NUL.
        """
        data = body.encode() if isinstance(body, str) else body
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise LocalProtocolError("STOMP over SockJS carries UTF-8 bodies only") from None
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        kept = tuple((k, v) for k, v in pairs if k not in RESERVED_HEADERS)
        if any("\0" in k + v or not k for k, v in kept):
            raise LocalProtocolError("header names must be non-empty and headers free of NUL")
        return cls(kept, data)

    @property
    def size(self) -> int:
        """Bytes this payload counts for against ``max_queued_bytes``: the body plus
        each header's name and value (as characters; close enough to bytes for a bound)."""
        return len(self.body) + sum(len(k) + len(v) + 2 for k, v in self.headers)


class AppMessage:
    """A SEND to an application destination, as its handler sees it.

    Attributes:
        destination: the full destination, e.g. ``/app/echo``.
        headers: the sender's headers (the broker's own, such as ``receipt``, removed).
        body: the body, as bytes (:attr:`text` decodes it).
        user: the sender's user name, if an ``authenticate`` hook named one.
        session: the sender's STOMP session id.

    It holds plain values and two callables the broker gives it, so this module does not
    import the broker (the broker imports it).
    """

    __slots__ = (
        "destination",
        "headers",
        "body",
        "user",
        "session",
        "_reply_to",
        "_reply",
        "_publish",
    )

    def __init__(
        self,
        destination: str,
        payload: Payload,
        *,
        user: str | None,
        session: str,
        reply_to: str,
        reply: Callable[[str, str | bytes, Headers], int],
        publish: Callable[[str, str | bytes, Headers], None],
    ) -> None:
        self.destination = destination
        self.headers = payload.headers
        self.body = payload.body
        self.user = user
        self.session = session
        self._reply_to = reply_to  # the default destination of reply()
        self._reply = reply  # sends to the sender's own subscriptions
        self._publish = publish  # Broker.publish

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8", errors="replace")

    def reply(
        self, body: str | bytes, *, destination: str | None = None, headers: Headers = ()
    ) -> int:
        """Send to the sender's own subscriptions on ``destination`` (by default
        ``/user/queue/<name>`` for ``/app/<name>``, as Spring's ``@SendToUser`` does for
        one session). Returns how many subscriptions got it."""
        return self._reply(self._reply_to if destination is None else destination, body, headers)

    def publish(self, destination: str, body: str | bytes, headers: Headers = ()) -> None:
        """Send to a ``/topic/`` or ``/queue/`` destination (:meth:`Broker.publish`)."""
        self._publish(destination, body, headers)
