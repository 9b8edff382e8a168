"""``quote``: the SockJS server escape set, raw UTF-8 for the rest, and JSON round-trips."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockjs_gateway.protocol.escaping import SERVER_ESCAPED, quote

# The protocol suite's ``escapable_by_server`` set (sockjs-protocol.py), written out here
# rather than imported so that a change to the library's set is caught.
PROTOCOL_SET = re.compile("[\x00-\x1f\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff]")

# JSON (and JSON.stringify in sockjs-node) writes these five controls as short escapes.
SHORT_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}

# Any text, lone and paired surrogates and astral code points included.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()))
# Text a Python str can hold as code points (no surrogate code units).
WELL_FORMED_TEXT = st.text(st.characters(codec="utf-8"))


def assert_quotes(text: str, literal: str) -> None:
    """``quote(text)`` is exactly ``literal``, and JSON reads ``text`` back from it."""
    assert quote(text) == literal
    assert json.loads(literal) == text


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("", '""'),
        ("hello", '"hello"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("/", '"/"'),
        ("\x7f", '"\x7f"'),
        ("café", '"café"'),
        ("漢字", '"漢字"'),
        ("\u200b", '"\u200b"'),  # just below the 200C-200F range
        ("\u2030", '"\u2030"'),  # just above 2028-202F
        ("\ufeff", '"\ufeff"'),  # just below FFF0
        ("\u200c\u200f", '"\\u200c\\u200f"'),
        ("\u2028\u2029", '"\\u2028\\u2029"'),
        ("\u2060\u206f", '"\\u2060\\u206f"'),
        ("\ufff0\uffff", '"\\ufff0\\uffff"'),
        ("\U0001f600", '"\\ud83d\\ude00"'),
        ("\U00010000", '"\\ud800\\udc00"'),
        ("\U0010ffff", '"\\udbff\\udfff"'),
        ("a\U0001f600b", '"a\\ud83d\\ude00b"'),
        ("\ud800", '"\\ud800"'),
        ("\udfff", '"\\udfff"'),
        ("x\udc00y", '"x\\udc00y"'),
    ],
)
def test_quote_exact(text: str, literal: str) -> None:
    assert_quotes(text, literal)


@pytest.mark.parametrize("code", range(0x20))
def test_control_characters_are_escaped(code: int) -> None:
    char = chr(code)
    expected = SHORT_ESCAPES.get(char, f"\\u{code:04x}")
    assert_quotes(char, f'"{expected}"')


def test_cjk_is_raw_utf8_not_doubled() -> None:
    text = "漢字" * 100
    assert len(quote(text).encode("utf-8")) == len(text.encode("utf-8")) + 2


def test_protocol_suite_escape_string() -> None:
    # sockjs-protocol.py builds server_killer_string_esc from exactly this range.
    codes = [c for c in range(0x00FF, 0x10000) if PROTOCOL_SET.match(chr(c))]
    assert len(codes) == 4 + 8 + 16 + 16
    for code in codes:
        assert quote(chr(code)) == f'"\\u{code:04x}"'
    killer = "".join(chr(c) for c in codes)
    assert quote(killer) == '"' + "".join(f"\\u{c:04x}" for c in codes) + '"'


def test_every_bmp_code_unit_round_trips_and_is_safe() -> None:
    for code in range(0x10000):
        char = chr(code)
        literal = quote(char)
        assert json.loads(literal) == char, hex(code)
        assert SERVER_ESCAPED.search(literal) is None, hex(code)
        literal.encode("utf-8")
        # Only what must be escaped is: everything else stays one raw character.
        if PROTOCOL_SET.match(char) is None and not 0xD800 <= code <= 0xDFFF:
            assert literal in (f'"{char}"', '"\\""', '"\\\\"'), hex(code)


@settings(max_examples=500, deadline=None)
@given(WELL_FORMED_TEXT)
def test_round_trip_property(text: str) -> None:
    assert json.loads(quote(text)) == text


@settings(max_examples=500, deadline=None)
@given(ANY_TEXT)
def test_output_has_no_raw_escapable_and_encodes(text: str) -> None:
    literal = quote(text)
    assert SERVER_ESCAPED.search(literal) is None
    assert PROTOCOL_SET.search(literal) is None
    literal.encode("utf-8")
    # A browser reads UTF-16: it gets text's code units back, pairs joined.
    browser_view = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    assert json.loads(literal) == browser_view
