"""The errors a STOMP peer can cause, each carrying the ERROR frame's ``message`` header.

Every one of them is the client's fault, so they derive from
:class:`~sockjs_gateway.exceptions.RemoteProtocolError`: the protocol machine turns them
into an ERROR frame and closes the connection (STOMP 1.2, "ERROR"). Bugs on our side (an
application asking to send a frame STOMP cannot carry) raise
:class:`~sockjs_gateway.exceptions.LocalProtocolError` instead.
"""

from __future__ import annotations

from ..exceptions import RemoteProtocolError

__all__ = ["StompError", "FrameError", "LimitExceeded", "NotAuthorized"]


class StompError(RemoteProtocolError):
    """The client broke the STOMP protocol.

    ``str(error)`` is the short, human-readable ``message`` header of the ERROR frame the
    client receives; ``details`` (optional) becomes the ERROR frame's body and ``headers``
    are added to it (e.g. ``version`` when negotiation fails).
    """

    def __init__(
        self, message: str, details: str = "", headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers


class FrameError(StompError):
    """The bytes are not a well-formed STOMP frame (bad command, header line, escape,
    ``content-length``, missing NUL, or invalid UTF-8 in the command or headers)."""


class LimitExceeded(StompError):
    """A configured limit was crossed: frame size, header count or length, subscriptions
    per client, unacknowledged messages, queue depth, or transaction size."""


class NotAuthorized(StompError):
    """An authentication or authorization hook refused the request."""
