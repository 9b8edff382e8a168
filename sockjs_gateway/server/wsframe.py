"""RFC 6455 frames as the server sends them (unmasked, unfragmented), and the close codes
a server may put on the wire.

Built as bytes, so the connection (:mod:`.rfc6455`) writes them straight to the transport
and a broadcast builds a frame once for every session. A compressed session's text frames
carry a permessage-deflate payload and RSV1 (:func:`deflated_text_frame`).
"""

from __future__ import annotations

import struct

__all__ = [
    "text_frame",
    "deflated_text_frame",
    "close_frame",
    "frame_size",
    "close_reason",
    "ws_close_code",
]

_HEAD_126 = struct.Struct("!BBH")
_HEAD_127 = struct.Struct("!BBQ")
_SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})


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
    """The complete frame (FIN, RSV1, opcode 1) carrying a permessage-deflate payload.

    The same three lengths as :func:`text_frame`, written out again on purpose: a shared
    helper would cost every uncompressed message one more call."""
    size = len(payload)
    if size < 126:
        return bytes((0xC1, size)) + payload
    if size < 65536:
        return _HEAD_126.pack(0xC1, 126, size) + payload
    return _HEAD_127.pack(0xC1, 127, size) + payload


def ws_close_code(code: int) -> int:
    """The code a close frame may carry for a session closed with ``code``: RFC 6455's
    codes and 3000-4999; SockJS-only codes such as 2010 are told in the ``c`` frame, and
    the socket then ends with 1000."""
    return code if code in _SENDABLE_CODES or 3000 <= code <= 4999 else 1000


def close_frame(code: int, reason: str) -> bytes:
    """A close frame with ``code`` and as much of ``reason`` as fits."""
    payload = code.to_bytes(2, "big") + close_reason(reason)
    return bytes((0x88, len(payload))) + payload
