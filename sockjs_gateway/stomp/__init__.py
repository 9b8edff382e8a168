"""STOMP 1.2 (and 1.0, 1.1) over SockJS, for clients such as @stomp/stompjs.

So far: the frame codec (:mod:`.frames`) and its errors (:mod:`.errors`).
"""

from .errors import FrameError, LimitExceeded, NotAuthorized, StompError
from .frames import Frame, FrameDecoder, FrameLimits, encode, encode_text

__all__ = [
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
