"""The names aio-libs ``sockjs`` 0.13 handlers compare against, with the same values.

Kept apart from the session adapter so that a handler module importing only these names
pulls in nothing else. The values match aio-libs' enums so that code which logs or stores
them sees the same thing after the switch.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "MsgType",
    "SockjsMessage",
    "SessionState",
    "Frame",
    "SockjsException",
    "SessionIsAcquired",
    "SessionIsClosed",
    "SessionInterrupted",
    "OPEN_MESSAGE",
    "CLOSED_MESSAGE",
    "MSG_OPEN",
    "MSG_MESSAGE",
    "MSG_CLOSE",
    "MSG_CLOSED",
]


@enum.unique
class MsgType(enum.Enum):
    """What a handler call is about: ``OPEN`` once, ``MESSAGE`` per client message, then
    ``CLOSE`` (only when the client side ended the session) and ``CLOSED`` once."""

    OPEN = 1
    MESSAGE = 2
    CLOSE = 3
    CLOSED = 4


# The module-level names aio-libs had before 0.13 made them an enum; old handlers still
# compare against them.
MSG_OPEN = MsgType.OPEN
MSG_MESSAGE = MsgType.MESSAGE
MSG_CLOSE = MsgType.CLOSE
MSG_CLOSED = MsgType.CLOSED


@enum.unique
class SessionState(enum.Enum):
    """aio-libs' four session states. ``CLOSING`` lasts from the close until the
    ``CLOSED`` message has been handled."""

    NEW = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


@enum.unique
class Frame(enum.Enum):
    """SockJS frame prefixes, for code that imports aio-libs' ``Frame``."""

    OPEN = "o"
    CLOSE = "c"
    MESSAGE = "a"
    MESSAGE_BLOB = "a1"
    HEARTBEAT = "h"


@dataclass(frozen=True, slots=True)
class SockjsMessage:
    """One handler call's payload.

    Attributes:
        type: the :class:`MsgType`.
        data: the client's text for ``MESSAGE``; for ``CLOSE`` None after a clean close
            or a timeout, else a :class:`SessionInterrupted`; None otherwise.
    """

    type: MsgType
    data: str | BaseException | None

    @property
    def tp(self) -> MsgType:
        """The older name of :attr:`type`."""
        return self.type


OPEN_MESSAGE = SockjsMessage(MsgType.OPEN, None)
CLOSED_MESSAGE = SockjsMessage(MsgType.CLOSED, None)


class SockjsException(Exception):
    """Base of aio-libs' exceptions (exported so ``except`` clauses keep importing)."""


class SessionIsAcquired(SockjsException):
    """Exported for import compatibility; sockjs_gateway never raises it."""


class SessionIsClosed(SockjsException):
    """Exported for import compatibility; sockjs_gateway never raises it."""


class SessionInterrupted(ConnectionError):
    """``msg.data`` of a ``CLOSE`` that was not clean: the connection was lost (1002),
    or the client broke the protocol (1003, 1007, 1009).

    Attributes:
        code: the SockJS close code.
        reason: the close reason.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason
