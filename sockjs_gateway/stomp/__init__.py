"""STOMP 1.2 (and 1.0, 1.1) over SockJS, for clients such as @stomp/stompjs.

Mount it like any handler::

    broker = Broker()

    @broker.message_mapping("/echo")
    def echo(message: AppMessage) -> None:
        message.reply(message.body)

    add_endpoint(app, StompHandler(broker), prefix="/stomp")

The layers: :mod:`.frames` (codec), :mod:`.protocol` (one connection, sans I/O) and the
:mod:`.events` it yields, :mod:`.broker` (destinations and acks) and the :mod:`.messages`
it moves, :mod:`.app` (the SockJS glue). Settings: :mod:`.options`; errors: :mod:`.errors`.


The names below are imported on first use (PEP 562): the codec and the machine
(:mod:`.frames`, :mod:`.protocol`) load without the server, aiohttp or asyncio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:
    from .app import DISCONNECT_CLOSE, ERROR_CLOSE, StompHandler
    from .bridge import BrokerBridge
    from .broker import Authenticate, Authorize, Broker
    from .errors import FrameError, LimitExceeded, NotAuthorized, StompError
    from .events import Ack, ConnectRequest, Event, Nack, Send, Subscribe, Unsubscribe
    from .frames import Frame, FrameDecoder, FrameLimits, encode, encode_text
    from .messages import AppMessage, MessageHandler, Payload
    from .options import StompOptions
    from .protocol import ConnectionState, StompMachine

__all__ = [
    "StompHandler",
    "Broker",
    "BrokerBridge",
    "AppMessage",
    "Payload",
    "Authenticate",
    "Authorize",
    "MessageHandler",
    "StompOptions",
    "StompMachine",
    "ConnectionState",
    "Event",
    "ConnectRequest",
    "Subscribe",
    "Unsubscribe",
    "Send",
    "Ack",
    "Nack",
    "Frame",
    "FrameDecoder",
    "FrameLimits",
    "encode",
    "encode_text",
    "StompError",
    "FrameError",
    "LimitExceeded",
    "NotAuthorized",
    "ERROR_CLOSE",
    "DISCONNECT_CLOSE",
]

_LAZY = {
    "BrokerBridge": ".bridge",
    "DISCONNECT_CLOSE": ".app",
    "ERROR_CLOSE": ".app",
    "StompHandler": ".app",
    "Authenticate": ".broker",
    "Authorize": ".broker",
    "Broker": ".broker",
    "FrameError": ".errors",
    "LimitExceeded": ".errors",
    "NotAuthorized": ".errors",
    "StompError": ".errors",
    "Ack": ".events",
    "ConnectRequest": ".events",
    "Event": ".events",
    "Nack": ".events",
    "Send": ".events",
    "Subscribe": ".events",
    "Unsubscribe": ".events",
    "Frame": ".frames",
    "FrameDecoder": ".frames",
    "FrameLimits": ".frames",
    "encode": ".frames",
    "encode_text": ".frames",
    "AppMessage": ".messages",
    "MessageHandler": ".messages",
    "Payload": ".messages",
    "StompOptions": ".options",
    "ConnectionState": ".protocol",
    "StompMachine": ".protocol",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
