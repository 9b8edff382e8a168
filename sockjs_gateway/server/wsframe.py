"""RFC 6455 text frames as the server sends them (unmasked, unfragmented, uncompressed).

aiohttp's writer is a coroutine per frame. For a WebSocket without permessage-deflate whose
transport buffer has room, the receiver writes these bytes straight to the transport
instead, and a broadcast builds them once for every session (see
:class:`sockjs_gateway.server.websocket.WebSocketReceiver`).
"""

from __future__ import annotations

import struct

__all__ = ["text_frame", "deflated_text_frame", "frame_size", "close_reason"]

_HEAD_126 = struct.Struct("!BBH")
_HEAD_127 = struct.Struct("!BBQ")


def close_reason(reason: str) -> bytes:
    """``reason`` as a close frame can carry it: at most 123 bytes of UTF-8 (after the
    2-byte code, in a 125-byte control frame), never cut inside a character."""
    data = reason.encode()
    if len(data) <= 123:
        return data
    return data[:123].decode("utf-8", "ignore").encode()


def frame_size(text: str) -> int:
    """How many bytes the frame carrying ``text`` takes on the wire."""
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    return size + (2 if size < 126 else 4 if size < 65536 else 10)


def text_frame(text: str) -> bytes:
    """The complete frame (FIN, opcode 1) carrying ``text``."""
    payload = text.encode("utf-8")
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return _HEAD_126.pack(0x81, 126, size) + payload
    return _HEAD_127.pack(0x81, 127, size) + payload


def deflated_text_frame(payload: bytes) -> bytes:
    """The complete frame (FIN, RSV1, opcode 1) carrying a permessage-deflate payload."""
    size = len(payload)
    if size < 126:
        return bytes((0xC1, size)) + payload
    if size < 65536:
        return _HEAD_126.pack(0xC1, 126, size) + payload
    return _HEAD_127.pack(0xC1, 127, size) + payload
