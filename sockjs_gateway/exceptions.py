"""Errors that say whose fault it is.

A :class:`RemoteProtocolError` is the peer's fault: the adapters turn it into the answer the
SockJS protocol defines (a 500 with the message as body, or a WebSocket close). A
:class:`LocalProtocolError` is a bug on our side or in the application and is raised to it.
"""

from __future__ import annotations

__all__ = ["SockJSError", "RemoteProtocolError", "BadPayload", "LocalProtocolError"]


class SockJSError(Exception):
    """Base class of every error this package raises."""


class RemoteProtocolError(SockJSError):
    """The client sent something the protocol does not allow."""


class BadPayload(RemoteProtocolError):
    """An inbound payload is not a JSON array of strings.

    ``str(error)`` is exactly the body the protocol prescribes: ``"Payload expected."``
    or ``"Broken JSON encoding."``.
    """


class LocalProtocolError(SockJSError):
    """The application asked for something the protocol does not allow."""
