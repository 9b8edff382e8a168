"""SockJS frames: the four the server sends, and the one reader for what clients send.

Outbound frames are ``o`` (open), ``h`` (heartbeat), ``a[...]`` (messages) and
``c[code,"reason"]`` (close); see sockjs-protocol.py, "Protocol and framing".
:func:`encode` is the only writer, :func:`decode_messages` the only reader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..exceptions import BadPayload
from .escaping import quote

__all__ = [
    "Open",
    "Heartbeat",
    "Messages",
    "Close",
    "Frame",
    "OPEN",
    "HEARTBEAT",
    "encode",
    "encode_messages",
    "encode_message",
    "decode_messages",
    "PAYLOAD_EXPECTED",
    "BROKEN_JSON",
]

PAYLOAD_EXPECTED = "Payload expected."
BROKEN_JSON = "Broken JSON encoding."

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_loads = json.JSONDecoder().decode
# The C scanner behind json.loads (typeshed does not declare the attribute).
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_SPACE = re.compile("[ \t\n\r]*")
# The C string scanner json.loads calls for each string: (text, index after the opening
# quote) -> (the string, index after its closing quote); ValueError if it is not one.
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Open:
    """``o``: the session is open."""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """``h``: nothing to say, but the session is alive."""


@dataclass(frozen=True, slots=True)
class Messages:
    """``a[...]``: application messages, each already a JSON literal made by :func:`quote`.

    Holding quoted text lets a broadcast quote a message once for every session.
    """

    quoted: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Close:
    """``c[code,"reason"]``: the session is closed."""

    code: int
    reason: str


Frame = Open | Heartbeat | Messages | Close

OPEN = "o"
HEARTBEAT = "h"


def encode_messages(quoted: list[str] | tuple[str, ...]) -> str:
    """Return the ``a[...]`` frame for already quoted messages."""
    return "a[" + ",".join(quoted) + "]"


def encode_message(quoted: str) -> str:
    """Return the ``a[...]`` frame for one already quoted message: what
    ``encode_messages((quoted,))`` returns, without the tuple and the join, for the
    WebSocket path that sends each message as its own frame."""
    return "a[" + quoted + "]"


def encode(frame: Frame) -> str:
    """Return the wire text of ``frame`` (without any transport wrapping)."""
    if isinstance(frame, Messages):
        return encode_messages(frame.quoted)
    if isinstance(frame, Close):
        return f"c[{int(frame.code)},{quote(frame.reason)}]"
    if isinstance(frame, Heartbeat):
        return HEARTBEAT
    return OPEN


def decode_messages(text: str, *, allow_single: bool = False) -> list[str]:
    """Read the messages a client sent.

    Args:
        text: the request body (``xhr_send``, ``jsonp_send``) or WebSocket frame.
        allow_single: accept a bare JSON string as one message, as the WebSocket
            transport does.

    Returns:
        The messages, in order. A lone UTF-16 surrogate (which a browser may send but a
        Python ``str`` cannot encode) becomes U+FFFD, so handlers never see a string
        that fails to encode.

    Raises:
        BadPayload: ``"Payload expected."`` for an empty body or anything but a JSON
            array of strings; ``"Broken JSON encoding."`` for text that is not JSON.
    """
    if text[:2] == '["':
        # What clients send almost always: one message. Scan its string with the scanner
        # json.loads would call at this very place (same escapes, same errors), and if
        # only the "]" follows, that is the whole document.
        try:
            message, end = _scanstring(text, 2)
        except ValueError:
            raise BadPayload(BROKEN_JSON) from None
        if end == len(text) - 1 and text[end] == "]":
            if not message.isascii() and _LONE_SURROGATE.search(message) is not None:
                message = _LONE_SURROGATE.sub("\ufffd", message)
            return [message]
    elif not text:
        raise BadPayload(PAYLOAD_EXPECTED)
    try:
        # A client's frame almost always starts with "[": scan it directly, skipping the
        # whitespace matching json.loads does first (same grammar, same errors).
        if text[0] == "[":
            value, end = _scan(text, 0)
            if end != len(text) and _SPACE.fullmatch(text, end) is None:
                raise BadPayload(BROKEN_JSON)
        else:
            value = _loads(text)
    except (ValueError, RecursionError, StopIteration):
        raise BadPayload(BROKEN_JSON) from None
    if isinstance(value, str) and allow_single:
        value = [value]
    if not isinstance(value, list):
        raise BadPayload(PAYLOAD_EXPECTED)
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise BadPayload(PAYLOAD_EXPECTED)
        if not item.isascii() and _LONE_SURROGATE.search(item) is not None:
            value[index] = _LONE_SURROGATE.sub("\ufffd", item)
    return value
