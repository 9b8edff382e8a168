"""The one place where SockJS JSON escaping happens.

SockJS frames carry JSON, but browsers mangle some code points on some transports, so the
protocol (``sockjs-protocol.py``, "JSON Unicode Encoding") names a set that the server must
send as ``\\uXXXX``: U+0000-001F, U+200C-200F, U+2028-202F, U+2060-206F and U+FFF0-FFFF.
We also escape UTF-16 surrogates, as sockjs-node does: astral characters (emoji) leave as an
escaped surrogate pair, so what the browser receives is byte-for-byte what sockjs-node sends.
Everything else goes out as raw UTF-8, so CJK text costs 3 bytes a character, not 6.
Control characters that JSON has short escapes for (``\\b \\t \\n \\f \\r``) keep them,
as ``JSON.stringify`` (and so sockjs-node) writes them; the rest are ``\\u00XX``.
"""

from __future__ import annotations

import json
import re

__all__ = ["quote", "SERVER_ESCAPED"]

#: Code points the server always sends escaped (the protocol's ``escapable_by_server`` set,
#: plus every surrogate and astral code point, which go out as UTF-16 escapes).
SERVER_ESCAPED = re.compile(
    "[\x00-\x1f\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff"
    "\ud800-\udfff\U00010000-\U0010ffff]"
)

# The C string encoder behind json.dumps(ensure_ascii=False), without JSONEncoder's
# per-call dispatch: it escapes only '"', '\\' and control characters.
_dumps = json.encoder.encode_basestring


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"


def quote(text: str) -> str:
    """Encode ``text`` as a JSON string literal the way SockJS requires.

    Args:
        text: any Python string, lone surrogates included.

    Returns:
        A JSON string literal (with its quotes) in which every code point of the server
        escape set, every surrogate and every astral code point is escaped (lowercase
        ``\\uXXXX``, or JSON's short form for ``\\b \\t \\n \\f \\r``); ``json.loads`` of it
        gives ``text`` back.
    """
    encoded = _dumps(text)
    if text.isascii():
        return encoded  # its only escapable code points are controls, which _dumps escaped
    if SERVER_ESCAPED.search(encoded) is None:
        return encoded
    return SERVER_ESCAPED.sub(_escape, encoded)
