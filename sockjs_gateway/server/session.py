"""What a handler holds: one SockJS session, whatever transport carries it.

The bottom of ``server/``: this module imports nothing else of it at run time. A
:class:`Session` holds only what the application reads (id, request snapshot, machine,
receiver); what the server keeps per session (timer, hook task, handler queue) belongs
to the registry, which keeps it beside the session, not in it. The session reaches the
registry only through :class:`SessionOwner`, the two calls ``send`` and ``close`` need,
and its endpoint only through :class:`SessionEndpoint`, the few calls a handler makes
through ``session.endpoint``: the session never names the endpoint module, even for
types, and the server's own modules hold their endpoint or registry themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..history import Position, Start
from ..info import ConnectionInfo
from ..protocol.state import SessionMachine, SessionState

__all__ = [
    "Session",
    "SessionOwner",
    "SessionEndpoint",
    "Subscriptions",
    "Receiver",
    "Recovery",
    "Since",
]

#: Where a subscription starts: None (live messages only), the :class:`Position` of the
#: last message seen (resume after it), a :class:`Start`, or its ``x-stream-offset`` text
#: (``"first"``, ``"last"``, ``"next"``, ``"offset=N"``, ``"timestamp=T"``).
Since = Position | Start | str | None


@dataclass(frozen=True, slots=True)
class Recovery:
    """What :meth:`Session.subscribe` did (:mod:`.channels` says what the client gets).

    Attributes:
        channel: the channel.
        epoch: its epoch (None while nothing was ever published to it).
        recovered: False when messages asked for are gone (older than the history, or
            from another epoch): the client should resync.
        replayed: how many retained messages were queued for the session.
    """

    channel: str
    epoch: str | None
    recovered: bool
    replayed: int


class Subscriptions(Protocol):
    """An endpoint's channels as a session uses them (:class:`.channels.SessionChannels`)."""

    async def subscribe(self, session: Session, channel: str, since: Since = None) -> Recovery:
        """Send ``session`` the messages of ``channel`` from ``since`` on, then live ones."""

    def unsubscribe(self, session: Session, channel: str) -> bool:
        """Stop sending ``channel`` to ``session``; False if it was not subscribed."""


class SessionEndpoint(Protocol):
    """The endpoint as a session, and a handler through ``session.endpoint``, sees it.

    The object is the session's :class:`~sockjs_gateway.Endpoint`; this protocol names
    the calls a handler makes through the session (``broadcast``, ``publish``, and the
    channels behind ``subscribe``) so that this module need not import the endpoint's.
    """

    @property
    def channels(self) -> Subscriptions:
        """The endpoint's channels (made on first use)."""

    def broadcast(self, message: str) -> int:
        """Send ``message`` to every open session of the endpoint (on every node)."""

    def publish(self, channel: str, text: str) -> Position | None:
        """Publish ``text`` to ``channel``; its position when known at once."""


class SessionOwner(Protocol):
    """What a session asks of whoever keeps it (the registry): queue a message, close."""

    def send(self, session: Session, message: str) -> bool:
        """Queue (or write) ``message``; False if the session is closed."""

    def close(self, session: Session, code: int, reason: str) -> None:
        """Close the session with a close frame."""


class Receiver(Protocol):
    """The connection currently carrying a session's frames to the client."""

    def wake(self) -> None:
        """The session has frames to send, or has closed."""

    def abort(self) -> None:
        """Cut the connection off: its writes are stuck and the session is closed."""

    def write_direct(self, frame: bytes) -> bool:
        """Write a ready-made WebSocket frame at once if this receiver can (else False)."""

    @property
    def frames_direct(self) -> bool:
        """Whether :meth:`write_direct` takes frames at all (it may still refuse one
        while the client is not reading)."""


class Session:
    """One SockJS session as the application sees it.

    ``send`` and ``close`` never block and may be called from any hook or task on the
    server's event loop; frames are written by whichever transport is attached.
    """

    __slots__ = (
        "id",
        "info",
        "endpoint",
        "machine",
        "receiver",
        "_owner",
        "principal",
    )

    def __init__(
        self,
        session_id: str,
        info: ConnectionInfo,
        endpoint: SessionEndpoint,
        owner: SessionOwner,
        machine: SessionMachine,
        principal: Any = None,
    ) -> None:
        #: The id the client chose (WebSocket sessions may share one; see the protocol).
        self.id = session_id
        #: A snapshot of the request that opened the session.
        self.info = info
        #: The endpoint this session belongs to (for ``broadcast``).
        self.endpoint = endpoint
        self.machine = machine
        self.receiver: Receiver | None = None
        self._owner = owner
        #: What the endpoint's ``authenticate`` hook returned for the opening request.
        self.principal = principal

    @property
    def state(self) -> SessionState:
        """``NEW``, ``OPEN`` or ``CLOSED``."""
        return self.machine.state

    @property
    def closed(self) -> bool:
        """True once the session is closed; ``send`` does nothing from then on."""
        return self.machine.state is SessionState.CLOSED

    def send(self, message: str) -> bool:
        """Queue ``message`` for the client.

        Returns:
            True if queued, False if the session is already closed.
        """
        return self._owner.send(self, message)

    async def subscribe(self, channel: str, since: Since = None) -> Recovery:
        """Receive the messages published to ``channel`` (``endpoint.publish``): first the
        retained ones from ``since`` (the :class:`~sockjs_gateway.history.Position` of the
        last one seen, or ``"first"``, ``"last"``, ``"offset=N"``, ...), then live ones,
        each once. See :mod:`sockjs_gateway.server.channels` for what the client gets.

        Raises:
            ValueError: a bad channel name or ``since``, or too many subscriptions.
        """
        return await self.endpoint.channels.subscribe(self, channel, since)

    def unsubscribe(self, channel: str) -> bool:
        """Stop receiving ``channel``; False if the session was not subscribed."""
        return self.endpoint.channels.unsubscribe(self, channel)

    def close(self, code: int = 3000, reason: str = "Go away!") -> None:
        """Close the session: queued messages, then ``c[code,"reason"]``, reach the client."""
        self._owner.close(self, code, reason)

    def __repr__(self) -> str:
        return f"<Session {self.id!r} {self.machine.state.value} via {self.info.transport}>"
