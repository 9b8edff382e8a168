"""STOMP 1.2 (and 1.0, 1.1) over SockJS, for clients such as @stomp/stompjs.

So far: the frame codec (:mod:`.frames`), the per-connection machine (:mod:`.protocol`)
and the events it yields (:mod:`.events`). Settings: :mod:`.options`; errors: :mod:`.errors`.
"""

from .errors import FrameError, LimitExceeded, NotAuthorized, StompError
from .events import Ack, ConnectRequest, Event, Nack, Send, Subscribe, Unsubscribe
from .frames import Frame, FrameDecoder, FrameLimits, encode, encode_text
from .options import StompOptions
from .protocol import ConnectionState, StompMachine

__all__ = [
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
]
