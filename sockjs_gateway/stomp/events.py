"""What a :class:`~sockjs_gateway.stomp.protocol.StompMachine` hands its owner: one
frozen dataclass per client frame the machine cannot answer alone.

They are the whole contract between the pure machine and whoever routes messages (the
broker): each carries what was checked (required headers present, ``ack`` mode valid) and
the ``receipt`` to send once the owner is done with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .frames import Frame

__all__ = [
    "ConnectRequest",
    "Subscribe",
    "Unsubscribe",
    "Send",
    "Acknowledgement",
    "Ack",
    "Nack",
    "Event",
]


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """CONNECT or STOMP: answer with ``accept(user)`` or ``reject(message)``."""

    version: str
    host: str | None
    login: str | None
    passcode: str | None
    frame: Frame
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """SUBSCRIBE, with its ``id``, ``destination`` and ``ack`` mode checked."""

    id: str
    destination: str
    ack: str
    frame: Frame
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """UNSUBSCRIBE of subscription ``id``."""

    id: str
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Send:
    """SEND to ``destination`` (outside a transaction, or from a committed one)."""

    destination: str
    frame: Frame
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """ACK or NACK of the message whose ``ack`` (1.2) or ``message-id`` (1.0/1.1) header is
    ``id``: the two carry the same fields, so they share them here."""

    id: str
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Ack(Acknowledgement):
    """ACK: the message was handled."""


@dataclass(frozen=True, slots=True)
class Nack(Acknowledgement):
    """NACK: the message was not handled (a queue redelivers it)."""


Event = ConnectRequest | Subscribe | Unsubscribe | Send | Ack | Nack
