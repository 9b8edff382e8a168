"""RFC 6455 (WebSocket) frames, both directions, and the close codes: one module per wire
format. No I/O: bytes in, calls to a sink out; strings in, frame bytes out.

The opening handshake (section 4.2): :func:`handshake_problem` says why an upgrade request's
headers are not a valid handshake, :func:`accept_value` computes ``Sec-WebSocket-Accept``.

Writing: :func:`text_frame`, :func:`deflated_text_frame` and :func:`close_frame` build the
server's frames (unmasked, unfragmented) as bytes, so the connection
(:mod:`sockjs_gateway.server.rfc6455`) writes them straight to the transport and a
broadcast builds a frame once for every session. :func:`ws_close_code` says which code a
closed session's close frame may carry.

Reading:

:class:`FrameReader` takes the bytes a client sent, in whatever pieces they arrived, and
tells its :class:`FrameSink` about whole text messages (reassembled from fragments and
checked as UTF-8), pings, and the client's close frame. Anything the protocol forbids
(an unmasked frame, reserved bits without an extension, a fragmented or long control
frame, a stray continuation, an unknown opcode, a binary frame: SockJS is text only, bad
UTF-8, a message over the size limit, a malformed close frame) ends in one ``on_error``
call with the close code the protocol assigns, and the reader takes nothing more.

The owner may :meth:`~FrameReader.hold` the reader from inside a sink call (its handler
queue is full): bytes already read are kept, unparsed, until :meth:`~FrameReader.release`.
Memory is bounded by the size limit: a frame that announces more is refused from its
header, before its payload is buffered.

With permessage-deflate negotiated (an ``inflate`` function given), a message whose first
frame has RSV1 set is inflated once whole, and the size limit applies to what it inflates
to as well.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable, Mapping
from typing import Protocol

__all__ = [
    "handshake_problem",
    "accept_value",
    "FrameReader",
    "FrameSink",
    "BAD_UTF8",
    "Inflate",
    "Unmask",
    "unmask",
    "text_frame",
    "deflated_text_frame",
    "close_frame",
    "frame_size",
    "close_reason",
    "ws_close_code",
    "NORMAL",
    "GOING_AWAY",
    "PROTOCOL_ERROR",
    "UNSUPPORTED_DATA",
    "NO_STATUS",
    "INVALID_DATA",
    "POLICY_VIOLATION",
    "MESSAGE_TOO_BIG",
    "INTERNAL_ERROR",
]

#: ``unmask(mask, payload)``: XOR ``payload`` in place with the client's 4-byte ``mask``
#: (the signature of aiohttp's C ``websocket_mask``, which the server passes as is).
Unmask = Callable[[bytes, bytearray], None]
#: ``inflate(payload, limit) -> bytes | None``: a compressed message, or None if it inflates
#: past ``limit`` bytes; raises ValueError if it is not deflate data (see :mod:`.wsdeflate`).
Inflate = Callable[[bytes | bytearray, int], "bytes | None"]

#: The reason given with 1007 when text is not UTF-8.
BAD_UTF8 = "Invalid UTF-8 text message"

# Close codes (RFC 6455 section 7.4.1), by name where the server uses them.
NORMAL = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003  # a binary frame: SockJS carries text only
NO_STATUS = 1005  # reported when a close frame has no code; never sent
INVALID_DATA = 1007  # text that is not UTF-8
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011

#: The codes a close frame may carry, besides 3000-4999: section 7.4.1's, the only ones a
#: server sends (:func:`ws_close_code`).
_SENT_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})
#: What a client's close frame may carry: the same plus 1012 and 1013, registered with IANA
#: since (service restart, try again later).
_RECEIVED_CODES = _SENT_CODES | {1012, 1013}
_TEXT, _BINARY, _CONTINUATION = 0x1, 0x2, 0x0
_CLOSE, _PING, _PONG = 0x8, 0x9, 0xA
# A FrameReader's states (module constants: the reader tests them for every read).
_READING, _HELD, _STOPPED = 0, 1, 2


class FrameSink(Protocol):
    """What a :class:`FrameReader` reports to."""

    def on_text(self, text: str, size: int) -> None:
        """A whole text message (``size``: its bytes on the wire); never empty unless
        the reader was made with ``ignore_empty=False``."""

    def on_ping(self, payload: bytes) -> None:
        """A ping; the owner answers with a pong carrying ``payload``."""

    def on_close(self, code: int, reason: str) -> None:
        """The client's close frame (1005 if it gave no code)."""

    def on_error(self, code: int, reason: str) -> None:
        """The client broke the protocol; close with ``code``. Nothing follows."""


def unmask(mask: bytes, payload: bytearray) -> None:
    """XOR ``payload`` in place with ``mask``, as one big integer: no per-byte Python loop."""
    size = len(payload)
    if size:
        key = (mask * (size // 4 + 1))[:size]
        value = int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")
        payload[:] = value.to_bytes(size, "little")


class FrameReader:
    """Parses one connection's client frames (see the module docstring)."""

    __slots__ = (
        "_sink",
        "_max",
        "_unmask",
        "_tail",
        "_need",
        "_fragments",
        "_fragments_size",
        "_state",
        "_ignore_empty",
        "_inflate",
        "_compressed",
    )

    def __init__(
        self,
        sink: FrameSink,
        max_size: int,
        unmask: Unmask = unmask,
        *,
        ignore_empty: bool = True,
        inflate: Inflate | None = None,
    ) -> None:
        self._sink = sink
        self._inflate = inflate
        self._compressed = False  # the fragmented message so far is compressed
        self._ignore_empty = ignore_empty  # SockJS ignores empty frames; raw text keeps them
        self._unmask = unmask
        self._max = max_size  # the largest message, in bytes
        self._tail: bytearray | None = None  # bytes of a frame not complete yet
        self._need = 0  # how many bytes _tail must hold before parsing goes on
        self._fragments: list[bytearray] | None = None  # a fragmented message so far
        self._fragments_size = 0
        self._state = _READING

    @property
    def stopped(self) -> bool:
        """True once an error was reported or :meth:`stop` was called."""
        return self._state == _STOPPED

    def hold(self) -> None:
        """Parse nothing more until :meth:`release`; keep what arrives meanwhile."""
        if self._state == _READING:
            self._state = _HELD

    def release(self) -> None:
        """Parse what was kept while held, and whatever comes next."""
        if self._state != _HELD:
            return
        self._state = _READING
        if self._tail is not None:
            self.feed(b"")  # parses the kept bytes once they make a frame

    def stop(self) -> None:
        """Drop everything from now on."""
        self._state = _STOPPED
        self._tail = self._fragments = None

    def feed(self, data: bytes | bytearray) -> None:
        """Bytes from the client, in order. The reader keeps what it needs of ``data`` as
        a copy, so the caller may reuse it.

        Every WebSocket message passes here, so the usual frame's decoding is written
        inline, twice: first for a read that is exactly one whole, masked, unfragmented
        text frame under 126 bytes (an echo's or a chat's message, read on its own), which
        skips the parse loop; then in the loop, for every other read. Both make the same
        calls to the sink for the same bytes (tests/protocol/test_rfc6455.py runs each
        case both ways).
        """
        size = len(data)
        if (
            6 < size < 132
            and data[1] == size + 0x7A  # masked, and the length is the rest of the read
            and data[0] == 0x81  # FIN, text, no RSV bits
            and self._state == _READING
            and self._tail is None
            and self._fragments is None
            and size - 6 <= self._max
        ):
            payload = data[6:] if type(data) is bytearray else bytearray(data[6:])
            self._unmask(bytes(data[2:6]), payload)
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                return self._error(INVALID_DATA, BAD_UTF8)
            return self._sink.on_text(text, size - 6)
        if self._state == _STOPPED:
            return None
        # The bytes to parse, as a bytearray: its slices are the payloads, unmasked in place.
        buffer = self._tail
        if buffer is not None:
            buffer += data
            if self._state == _HELD or len(buffer) < self._need:
                return None
            self._tail = None
            size = len(buffer)
        else:
            buffer = data if type(data) is bytearray else bytearray(data)
        pos = 0
        need = 0
        while pos < size and self._state == _READING:
            if size - pos < 2:
                need = 2
                break
            first = buffer[pos]
            second = buffer[pos + 1]
            length = second & 0x7F
            if length < 126:
                start = pos + 6
            elif length == 126:
                if size - pos < 4:
                    need = 4
                    break
                length = (buffer[pos + 2] << 8) | buffer[pos + 3]
                start = pos + 8
            else:
                if size - pos < 10:
                    need = 10
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                start = pos + 14
            if not second & 0x80:
                return self._error(PROTOCOL_ERROR, "Client frames must be masked.")
            if first & 0x08:
                if length > 125:
                    return self._error(PROTOCOL_ERROR, "Control frames must be under 126 bytes.")
            elif length + self._fragments_size > self._max:
                return self._error(
                    MESSAGE_TOO_BIG, f"Message size {length} exceeds limit {self._max}"
                )
            end = start + length
            if end > size:
                need = end - pos
                break
            payload = buffer[start:end]
            if length:
                self._unmask(bytes(buffer[start - 4 : start]), payload)
            pos = end
            if first != 0x81 or self._fragments is not None:
                self._frame(first, payload)
            elif length or not self._ignore_empty:  # a whole text frame (_text, inlined)
                try:
                    text = payload.decode("utf-8")
                except UnicodeDecodeError:
                    return self._error(INVALID_DATA, BAD_UTF8)
                self._sink.on_text(text, length)
        if pos < size and self._state != _STOPPED:
            self._tail = buffer[pos:]  # a copy: the caller may reuse data
            self._need = need
        return None

    def _frame(self, first: int, payload: bytearray) -> None:
        opcode = first & 0x0F
        fin = first & 0x80
        compressed = False
        if first & 0x70:
            # RSV1 is permessage-deflate's, on the first frame of a data message only.
            if first & 0x70 != 0x40 or self._inflate is None or opcode not in (_TEXT, _BINARY):
                return self._error(PROTOCOL_ERROR, "Reserved bits set without an extension.")
            compressed = True
        if opcode >= 0x8:
            if not fin:
                return self._error(PROTOCOL_ERROR, "Control frames must not be fragmented.")
            if opcode == _PING:
                self._sink.on_ping(bytes(payload))
            elif opcode == _CLOSE:
                self._close(payload)
            elif opcode != _PONG:
                self._error(PROTOCOL_ERROR, f"Unknown opcode {opcode}.")
            return None
        if opcode == _BINARY:
            return self._error(UNSUPPORTED_DATA, "Text frames only.")
        if opcode == _TEXT:
            if self._fragments is not None:
                return self._error(PROTOCOL_ERROR, "A new message began inside a fragmented one.")
            if fin:
                return self._text(payload, compressed)
            self._fragments = [payload]
            self._fragments_size = len(payload)
            self._compressed = compressed
        elif opcode == _CONTINUATION:
            if self._fragments is None:
                return self._error(PROTOCOL_ERROR, "Continuation frame without a message.")
            self._fragments.append(payload)
            self._fragments_size += len(payload)
            if fin:
                whole = b"".join(self._fragments)
                self._fragments = None
                self._fragments_size = 0
                self._text(whole, self._compressed)
        else:
            self._error(PROTOCOL_ERROR, f"Unknown opcode {opcode}.")
        return None

    def _text(self, payload: bytes | bytearray, compressed: bool = False) -> None:
        size = len(payload)
        if compressed and self._inflate is not None:
            try:
                inflated = self._inflate(payload, self._max)
            except ValueError:
                return self._error(INVALID_DATA, "Invalid compressed data")
            if inflated is None:
                return self._error(MESSAGE_TOO_BIG, f"Message inflates past the limit {self._max}")
            payload = inflated
        if not payload and self._ignore_empty:
            return None  # the SockJS protocol: empty frames are ignored
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            return self._error(INVALID_DATA, BAD_UTF8)
        self._sink.on_text(text, size)
        return None

    def _close(self, payload: bytearray) -> None:
        code, reason = NO_STATUS, ""
        if len(payload) == 1:
            return self._error(PROTOCOL_ERROR, "Invalid close frame.")
        if payload:
            code = int.from_bytes(payload[:2], "big")
            if code not in _RECEIVED_CODES and not 3000 <= code <= 4999:
                return self._error(PROTOCOL_ERROR, f"Invalid close code: {code}")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                return self._error(INVALID_DATA, BAD_UTF8)
        self.stop()  # nothing may follow a close frame
        self._sink.on_close(code, reason)
        return None

    def _error(self, code: int, reason: str) -> None:
        self.stop()
        self._sink.on_error(code, reason)


# Writing: the server's frames.

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


#: The header of every unmasked text frame under 126 bytes, by payload size: the frame of
#: most messages sent is one of these plus the payload.
_SMALL_TEXT_HEADS = tuple(bytes((0x81, size)) for size in range(126))


def text_frame(text: str) -> bytes:
    """The complete frame (FIN, opcode 1) carrying ``text``."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return _SMALL_TEXT_HEADS[size] + payload
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
    return code if code in _SENT_CODES or 3000 <= code <= 4999 else NORMAL


def close_frame(code: int, reason: str) -> bytes:
    """A close frame with ``code`` and as much of ``reason`` as fits."""
    payload = code.to_bytes(2, "big") + close_reason(reason)
    return bytes((0x88, len(payload))) + payload


# The opening handshake.

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def handshake_problem(headers: Mapping[str, str]) -> str | None:
    """Why an upgrade request's ``headers`` are not a valid RFC 6455 handshake (the 400's
    text), or None. Versions 7 and 8 (the last drafts, framed as 13) are taken, as aiohttp
    takes them."""
    version = headers.get("Sec-WebSocket-Version", "")
    if version not in ("13", "8", "7"):
        return f"Unsupported version: {version}"
    key = headers.get("Sec-WebSocket-Key", "")
    try:
        if len(base64.b64decode(key, validate=True)) == 16:
            return None
    except ValueError:
        pass
    return f"Handshake error: {key!r}"


def accept_value(key: str) -> str:
    """``Sec-WebSocket-Accept`` for the ``Sec-WebSocket-Key`` of a request that
    :func:`handshake_problem` has passed."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
