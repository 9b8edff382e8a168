"""Frames: the exact wire text of what the server sends, and the one inbound reader."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockjs_gateway.exceptions import BadPayload, RemoteProtocolError
from sockjs_gateway.protocol.escaping import quote
from sockjs_gateway.protocol.frames import (
    BROKEN_JSON,
    PAYLOAD_EXPECTED,
    Close,
    Frame,
    Heartbeat,
    Messages,
    Open,
    decode_messages,
    encode,
    encode_message,
    encode_messages,
)
from tests.helpers import decode_oracle

DOCUMENTED_ERRORS = {PAYLOAD_EXPECTED, BROKEN_JSON}

# Text with every kind of code unit, lone surrogates included.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()))

JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(ANY_TEXT, children, max_size=5)
    ),
    max_leaves=20,
)


@st.composite
def json_looking_text(draw: st.DrawFn) -> str:
    """JSON documents, whole or cut short, with or without ASCII escaping."""
    text = json.dumps(draw(JSON_VALUES), ensure_ascii=draw(st.booleans()))
    end = draw(st.integers(min_value=0, max_value=len(text)))
    return text if draw(st.booleans()) else text[:end]


def assert_round_trip(messages: list[str]) -> None:
    """What ``encode_messages`` writes, ``decode_messages`` reads back (the ``a`` aside)."""
    wire = encode_messages([quote(message) for message in messages])
    assert wire.startswith("a[")
    assert decode_messages(wire[1:]) == messages


def assert_bad(text: str, message: str, *, allow_single: bool = False) -> None:
    with pytest.raises(BadPayload) as info:
        decode_messages(text, allow_single=allow_single)
    assert str(info.value) == message


# -- encode ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "wire"),
    [
        (Open(), "o"),
        (Heartbeat(), "h"),
        (Messages(()), "a[]"),
        (Messages(('"a"',)), 'a["a"]'),
        (Messages((quote("a"), quote("b\n"), quote("\u2028"))), 'a["a","b\\n","\\u2028"]'),
        (Close(3000, "Go away!"), 'c[3000,"Go away!"]'),
        (Close(2010, "Another connection still open"), 'c[2010,"Another connection still open"]'),
        (Close(1002, 'a "quoted" \\ reason'), 'c[1002,"a \\"quoted\\" \\\\ reason"]'),
        (Close(4000, "\u2028\U0001f600漢"), 'c[4000,"\\u2028\\ud83d\\ude00漢"]'),
    ],
)
def test_encode(frame: Frame, wire: str) -> None:
    assert encode(frame) == wire


def test_close_frame_is_valid_json_after_the_c() -> None:
    reason = 'tricky "reason" \\ \x00 \ufff0'
    assert json.loads(encode(Close(3001, reason))[1:]) == [3001, reason]


def test_encode_messages_merges_in_order() -> None:
    quoted = [quote(text) for text in ("one", "two", "three")]
    assert encode_messages(quoted) == 'a["one","two","three"]'
    assert encode_messages(tuple(quoted)) == encode(Messages(tuple(quoted)))


@given(st.text())
def test_encode_message_is_encode_messages_of_one(text: str) -> None:
    assert encode_message(quote(text)) == encode_messages((quote(text),))


@pytest.mark.parametrize(
    "messages",
    [[], ["a"], ["a", "b"], ["", "x"], ['"]', "\\"], ["漢字", "\U0001f600", "\u2028\x00"]],
)
def test_messages_round_trip(messages: list[str]) -> None:
    assert_round_trip(messages)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.characters(codec="utf-8")), max_size=8))
def test_messages_round_trip_property(messages: list[str]) -> None:
    assert_round_trip(messages)


# -- decode ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "messages"),
    [
        ('["a","b"]', ["a", "b"]),
        ("[]", []),
        (' [ "a" , "b" ] ', ["a", "b"]),
        ('["\\u6f22\\u5b57"]', ["漢字"]),
        ('["\\ud83d\\ude00"]', ["\U0001f600"]),
        ('["\\ud800"]', ["\ufffd"]),
        ('["\\udc00x\\ud800"]', ["\ufffdx\ufffd"]),
        ('["\ud800"]', ["\ufffd"]),  # a raw lone surrogate, not an escape
    ],
)
def test_decode(text: str, messages: list[str]) -> None:
    assert decode_messages(text) == messages
    assert decode_messages(text, allow_single=True) == messages


@pytest.mark.parametrize(
    ("text", "messages"),
    [('"x"', ["x"]), ('""', [""]), ('"\\ud800"', ["\ufffd"]), ('"\\ud83d\\ude00"', ["😀"])],
)
def test_decode_single_string_when_allowed(text: str, messages: list[str]) -> None:
    assert decode_messages(text, allow_single=True) == messages
    assert_bad(text, PAYLOAD_EXPECTED)


def test_empty_body_is_payload_expected() -> None:
    assert_bad("", PAYLOAD_EXPECTED)
    assert_bad("", PAYLOAD_EXPECTED, allow_single=True)


@pytest.mark.parametrize("text", ['["a', "[", "nope", '["a",]', "[] []", '{"a"', "   "])
def test_broken_json(text: str) -> None:
    assert_bad(text, BROKEN_JSON)
    assert_bad(text, BROKEN_JSON, allow_single=True)


@pytest.mark.parametrize(
    "text", ["{}", "1", "[1]", '["a",null]', "null", "true", '[["a"]]', '{"a":"b"}', "[[]]"]
)
def test_json_that_is_not_an_array_of_strings(text: str) -> None:
    assert_bad(text, PAYLOAD_EXPECTED)
    assert_bad(text, PAYLOAD_EXPECTED, allow_single=True)


@pytest.mark.parametrize("text", ["[" * 100_000, "[" * 100_000 + "]" * 100_000, '{"a":' * 100_000])
def test_deep_nesting_is_bad_payload_not_recursion_error(text: str) -> None:
    with pytest.raises(BadPayload) as info:
        decode_messages(text)
    assert str(info.value) in DOCUMENTED_ERRORS


def decoded(text: str, allow_single: bool) -> list[str] | str:
    try:
        return decode_messages(text, allow_single=allow_single)
    except BadPayload as error:
        return str(error)


# The one-message shortcut takes '["' ... '"]' with nothing but one string between.
ONE_MESSAGE_EDGES = [
    '[""]',
    '["]',
    '["',
    '["a',
    '["a"',
    '["a"]',
    '["a"] ',
    ' ["a"]',
    '["a"]]',
    '["a"],',
    '["a"]x',
    '["a",]',
    '["a","b"]',
    '["a"]["b"]',
    '["\\"]',
    '["\\""]',
    '["\\\\"]',
    '["a\\"]',
    '["\\u0000"]',
    '["\\u00e9\\n\\t\\/"]',
    '["\\x"]',
    '["\\u12"]',
    '["\x00"]',
    '["\x1f"]',
    '["\x7f"]',
    '["\u00e9\u6f22"]',
    '["\U0001f600"]',
    '["\ud800"]',
    '["\\ud800"]',
    '["\\udc00x\\ud800"]',
    '["\\ud83d\\ude00"]',
    '["\u2028"]',
]


@pytest.mark.parametrize("text", ONE_MESSAGE_EDGES)
@pytest.mark.parametrize("allow_single", [False, True])
def test_one_message_shortcut_edges_decode_as_json_loads(text: str, allow_single: bool) -> None:
    assert decoded(text, allow_single) == decode_oracle(text, allow_single=allow_single)


# Text made of what matters to the shortcut: quotes, escapes, brackets, commas,
# whitespace, control characters, surrogates, non-ASCII.
SHORTCUT_TEXT = st.text(
    st.sampled_from(['"', "\\", "u", "d", "8", "0", "a", "]", "[", ",", " ", "\n"])
    | st.sampled_from(["\x00", "\x1f", "\x7f", "\u00e9", "\ud800", "\U0001f600", "n"]),
    max_size=12,
)


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(['["', '["', "[", " [", ""]), SHORTCUT_TEXT, st.booleans())
def test_decode_is_json_loads_and_the_checks(prefix: str, rest: str, allow_single: bool) -> None:
    text = prefix + rest
    assert decoded(text, allow_single) == decode_oracle(text, allow_single=allow_single)


def test_bad_payload_is_the_clients_fault() -> None:
    assert issubclass(BadPayload, RemoteProtocolError)


def assert_parses_or_documented_error(text: str, allow_single: bool) -> None:
    """The parser invariant: a list of encodable str, or BadPayload with a known message."""
    try:
        messages = decode_messages(text, allow_single=allow_single)
    except BadPayload as error:
        reason = str(error)
    else:
        assert isinstance(messages, list)
        for message in messages:
            assert isinstance(message, str)
            message.encode("utf-8")
        return
    assert reason in DOCUMENTED_ERRORS


@settings(max_examples=1000, deadline=None)
@given(ANY_TEXT, st.booleans())
def test_any_text_parses_or_raises_documented_error(text: str, allow_single: bool) -> None:
    assert_parses_or_documented_error(text, allow_single)


@settings(max_examples=500, deadline=None)
@given(json_looking_text(), st.booleans())
def test_any_json_parses_or_raises_documented_error(text: str, allow_single: bool) -> None:
    assert_parses_or_documented_error(text, allow_single)


@settings(max_examples=300, deadline=None)
@given(st.lists(ANY_TEXT, max_size=5))
def test_decoded_messages_always_encode(messages: list[str]) -> None:
    # Whatever UTF-16 code units the client sent, the handler gets what a UTF-16 decoder
    # would make of them: pairs joined, each lone surrogate U+FFFD; always encodable.
    decoded = decode_messages(json.dumps(messages))
    expected = [
        text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        for text in messages
    ]
    assert decoded == expected
    for message in decoded:
        message.encode("utf-8")
