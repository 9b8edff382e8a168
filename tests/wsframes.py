"""RFC 6455 client frames built byte by byte, for tests that speak WebSocket on the wire."""

from __future__ import annotations

import os
import struct

import pytest
from _pytest.mark import ParameterSet

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def client_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    mask: bytes | None = None,
) -> bytes:
    """A client frame with ``mask`` (random if None), or unmasked, which a server must
    refuse."""
    first = (0x80 if fin else 0) | rsv | opcode
    size = len(payload)
    bit = 0x80 if masked else 0
    if size < 126:
        head = struct.pack("!BB", first, bit | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", first, bit | 126, size)
    else:
        head = struct.pack("!BBQ", first, bit | 127, size)
    if not masked:
        return head + payload
    key = mask if mask is not None else os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def bad_frames(limit: int) -> list[ParameterSet]:
    """Client frames RFC 6455 forbids, each with the close code it earns, as
    ``pytest.param(data, code, id=...)``: one table for the frame reader's unit tests and
    the server's end-to-end ones. ``limit``: the receiver's message size limit in bytes.
    Payloads are SockJS-shaped (``["..."]``), so only the framing is at fault."""
    half = limit // 2 + 1
    rows = [
        ("unmasked", client_frame(TEXT, b'["plain"]', masked=False), 1002),
        ("reserved-bit", client_frame(TEXT, b'["rsv"]', rsv=0x40), 1002),
        ("continuation-first", client_frame(CONTINUATION, b'"]'), 1002),
        (
            "text-inside-fragments",
            client_frame(TEXT, b'["a', fin=False) + client_frame(TEXT, b'["b"]'),
            1002,
        ),
        ("long-ping", client_frame(PING, b"p" * 126), 1002),
        ("fragmented-ping", client_frame(PING, b"", fin=False), 1002),
        ("unknown-opcode", client_frame(0x3, b"reserved opcode"), 1002),
        ("one-byte-close", client_frame(CLOSE, b"\x03"), 1002),
        ("close-code-999", client_frame(CLOSE, struct.pack("!H", 999)), 1002),
        ("close-reason-not-utf8", client_frame(CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007),
        ("text-not-utf8", client_frame(TEXT, b'["\xff"]'), 1007),
        ("binary", client_frame(BINARY, b"\x00\x01"), 1003),
        ("too-big", client_frame(TEXT, b"x" * (limit + 1)), 1009),
        (
            "too-big-in-fragments",
            client_frame(TEXT, b"x" * half, fin=False) + client_frame(CONTINUATION, b"x" * half),
            1009,
        ),
    ]
    return [pytest.param(data, code, id=name) for name, data, code in rows]
