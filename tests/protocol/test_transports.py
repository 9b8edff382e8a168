"""The HTTP transport rows: what each one writes around a frame, and callback checks."""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockjs_gateway.protocol.escaping import quote
from sockjs_gateway.protocol.frames import Close, encode, encode_messages
from sockjs_gateway.protocol.transports import (
    TRANSPORT_NAMES,
    TRANSPORTS,
    escape_eventsource,
    js_string,
    valid_callback,
)

JS = "application/javascript; charset=UTF-8"
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()))
WELL_FORMED_TEXT = st.text(st.characters(codec="utf-8"))


@st.composite
def frames(draw: st.DrawFn) -> str:
    """Wire frames as the server makes them, messages and close reasons of any text."""
    kind = draw(st.sampled_from(["o", "h", "a", "c"]))
    if kind == "a":
        return encode_messages([quote(text) for text in draw(st.lists(ANY_TEXT, max_size=4))])
    if kind == "c":
        return encode(Close(draw(st.integers(1000, 4999)), draw(ANY_TEXT)))
    return kind


def test_transport_table() -> None:
    rows = {
        (spec.suffix, spec.name, spec.method, spec.content_type, spec.streaming)
        for spec in TRANSPORTS.values()
    }
    assert rows == {
        ("xhr", "xhr-polling", "POST", JS, False),
        ("xhr_streaming", "xhr-streaming", "POST", JS, True),
        ("eventsource", "eventsource", "GET", "text/event-stream", True),
        ("htmlfile", "htmlfile", "GET", "text/html; charset=UTF-8", True),
        ("jsonp", "jsonp-polling", "GET", JS, False),
    }
    assert all(suffix == spec.suffix for suffix, spec in TRANSPORTS.items())
    assert {s for s, spec in TRANSPORTS.items() if spec.needs_callback} == {"htmlfile", "jsonp"}
    cors = {s for s, spec in TRANSPORTS.items() if spec.cors}
    # What a cross-origin page calls directly grants CORS; script and iframe loads need not.
    assert {"xhr", "xhr_streaming", "eventsource"} <= cors
    names = {"xhr-polling", "xhr-streaming", "eventsource", "htmlfile", "jsonp-polling"}
    assert {spec.name for spec in TRANSPORTS.values()} == names
    assert names | {"websocket", "raw-websocket"} == TRANSPORT_NAMES


# -- xhr ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["xhr", "xhr_streaming"])
@pytest.mark.parametrize("frame", ["o", "h", 'a["x"]', 'c[3000,"Go away!"]'])
def test_xhr_wrap_adds_newline(suffix: str, frame: str) -> None:
    assert TRANSPORTS[suffix].wrap(frame, "") == frame + "\n"


def test_preludes() -> None:
    assert TRANSPORTS["xhr"].prelude("") == ""
    assert TRANSPORTS["jsonp"].prelude("cb") == ""
    assert TRANSPORTS["xhr_streaming"].prelude("") == "h" * 2048 + "\n"
    assert TRANSPORTS["eventsource"].prelude("") == "\r\n"


# -- eventsource -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("", ""),
        ("o", "o"),
        ("100%", "100%25"),
        ("%25", "%2525"),
        ("a\r\nb", "a%0D%0Ab"),
        ("\x00", "%00"),
        ("漢字 \u2028 ok", "漢字 \u2028 ok"),
    ],
)
def test_escape_eventsource(text: str, escaped: str) -> None:
    assert escape_eventsource(text) == escaped
    assert unquote(escaped) == text


def test_eventsource_wrap() -> None:
    wrap = TRANSPORTS["eventsource"].wrap
    assert wrap("o", "") == "data: o\r\n\r\n"
    assert wrap('a["100%"]', "") == 'data: a["100%25"]\r\n\r\n'


@settings(max_examples=300, deadline=None)
@given(WELL_FORMED_TEXT)
def test_eventsource_escape_survives_decode(text: str) -> None:
    escaped = escape_eventsource(text)
    assert re.search("[\r\n\x00]", escaped) is None
    assert unquote(escaped) == text


@settings(max_examples=300, deadline=None)
@given(frames())
def test_eventsource_wrap_is_one_event(frame: str) -> None:
    wire = TRANSPORTS["eventsource"].wrap(frame, "")
    assert wire.startswith("data: ")
    assert wire.endswith("\r\n\r\n")
    body = wire[len("data: ") : -len("\r\n\r\n")]
    assert re.search("[\r\n]", body) is None
    assert unquote(body) == frame


# -- htmlfile ----------------------------------------------------------------------------


@pytest.mark.parametrize("callback", ["c", "callback_1", "a.b.c", "x" * 32])
def test_htmlfile_prelude(callback: str) -> None:
    prelude = TRANSPORTS["htmlfile"].prelude(callback)
    assert f"var c = parent.{callback};" in prelude
    assert len(prelude.encode("utf-8")) > 1024
    assert prelude.lstrip().lower().startswith("<!doctype html>")
    assert prelude.endswith("\r\n\r\n")


def unwrap_htmlfile(wire: str) -> str:
    """The frame inside an htmlfile chunk, checking nothing but the wrapper closes the
    script element."""
    head, tail = "<script>\np(", ");\n</script>\r\n"
    assert wire.startswith(head)
    assert wire.endswith(tail)
    literal = wire[len(head) : -len(tail)]
    assert "</script" not in wire[: -len(tail)].lower()
    assert "<" not in literal
    assert wire.lower().count("</script") == 1
    value = json.loads(literal)
    assert isinstance(value, str)
    return value


@pytest.mark.parametrize(
    "frame",
    [
        "o",
        encode_messages([quote("</script><script>alert(1)</script>")]),
        encode_messages([quote("</SCRIPT >"), quote("<!-- & -->")]),
        encode(Close(3000, "</script>")),
    ],
)
def test_htmlfile_wrap(frame: str) -> None:
    assert unwrap_htmlfile(TRANSPORTS["htmlfile"].wrap(frame, "cb")) == frame


@settings(max_examples=300, deadline=None)
@given(frames())
def test_htmlfile_wrap_property(frame: str) -> None:
    assert unwrap_htmlfile(TRANSPORTS["htmlfile"].wrap(frame, "cb")) == frame


def test_js_string_escapes_html_specials() -> None:
    assert js_string("<a&b>") == '"\\u003ca\\u0026b\\u003e"'
    assert json.loads(js_string("<a&b>")) == "<a&b>"


# -- jsonp -------------------------------------------------------------------------------


def test_jsonp_wrap() -> None:
    wrap = TRANSPORTS["jsonp"].wrap
    assert wrap("o", "cb") == '/**/cb("o");\r\n'
    assert wrap('a["x"]', "my.cb_1") == '/**/my.cb_1("a[\\"x\\"]");\r\n'
    assert wrap(encode_messages([quote("</script>")]), "cb") == (
        '/**/cb("a[\\"\\u003c/script\\u003e\\"]");\r\n'
    )


# -- callbacks ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "cb", "A_b.9", "_", ".", "x" * 32, "jQuery1234_5678"])
def test_valid_callback_accepts(name: str) -> None:
    assert valid_callback(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * 33,
        "a(b",
        "a b",
        "<",
        "a-b",
        "a;b",
        "cb\n",
        "\ncb",
        "a$",
        "café",
        "\u0661",  # ARABIC-INDIC DIGIT ONE: a digit, but not 0-9
        "\uff41",  # FULLWIDTH LATIN SMALL LETTER A
        "\u212a",  # KELVIN SIGN: matches [a-z] only under re.IGNORECASE
    ],
)
def test_valid_callback_rejects(name: str) -> None:
    assert not valid_callback(name)


@settings(max_examples=500, deadline=None)
@given(ANY_TEXT)
def test_valid_callback_property(name: str) -> None:
    expected = 1 <= len(name) <= 32 and all(
        c.isascii() and (c.isalnum() or c in "_.") for c in name
    )
    assert valid_callback(name) == expected
