"""The STOMP codec both ways: vectors through one helper, errors, limits, and properties
(any chunking parses the same; any input parses or raises the documented error)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sockjs_gateway.exceptions import LocalProtocolError, RemoteProtocolError
from sockjs_gateway.stomp import (
    Frame,
    FrameDecoder,
    FrameError,
    FrameLimits,
    LimitExceeded,
    StompError,
)
from sockjs_gateway.stomp.frames import BODY_COMMANDS, CLIENT_COMMANDS, SERVER_COMMANDS, encode


def assert_frame_data(data: bytes, frame: Frame, version: str = "1.2") -> None:
    """``data`` decodes to exactly ``frame``, and ``frame`` encodes to exactly ``data``."""
    assert FrameDecoder(version=version).feed(data) == [frame]
    assert encode(frame, version) == data


def decode_one(data: bytes | str, version: str = "1.2") -> Frame:
    [frame] = FrameDecoder(version=version).feed(data)
    return frame


# -- vectors, both ways -------------------------------------------------------------------


def test_send_with_body_and_content_length() -> None:
    assert_frame_data(
        b"SEND\ndestination:/queue/a\ncontent-length:5\n\nhello\0",
        Frame("SEND", (("destination", "/queue/a"), ("content-length", "5")), b"hello"),
    )


def test_frame_without_headers_or_body() -> None:
    assert_frame_data(b"DISCONNECT\n\n\0", Frame("DISCONNECT"))


def test_body_without_content_length_ends_at_first_nul() -> None:
    assert_frame_data(
        b"SEND\ndestination:/topic/t\n\nh\xc3\xa9llo\0",
        Frame("SEND", (("destination", "/topic/t"),), "héllo".encode()),
    )


def test_content_length_body_may_hold_nul() -> None:
    frame = Frame("MESSAGE", (("content-length", "5"),), b"a\0b\0c")
    assert_frame_data(b"MESSAGE\ncontent-length:5\n\na\0b\0c\0", frame)
    assert Frame.build("MESSAGE", {}, b"a\0b\0c") == frame


@pytest.mark.parametrize(
    ("wire", "text"),
    [
        (b"\\c", ":"),
        (b"\\n", "\n"),
        (b"\\r", "\r"),
        (b"\\\\", "\\"),
        (b"a\\\\nb", "a\\nb"),  # an escaped backslash, then a plain n
        (b"\\\\\\c\\n\\r", "\\:\n\r"),
    ],
)
def test_header_escapes_in_1_2(wire: bytes, text: str) -> None:
    assert_frame_data(
        b"MESSAGE\nk" + wire + b":v" + wire + b"\n\n\0",
        Frame("MESSAGE", (("k" + text, "v" + text),)),
    )


def test_1_1_escapes_have_no_cr() -> None:
    assert_frame_data(
        b"MESSAGE\nk:a\\cb\\nc\\\\\n\n\0", Frame("MESSAGE", (("k", "a:b\nc\\"),)), "1.1"
    )
    with pytest.raises(FrameError, match="invalid escape"):
        decode_one(b"MESSAGE\nk:\\r\n\n\0", "1.1")


def test_1_0_has_no_escapes() -> None:
    assert_frame_data(b"MESSAGE\nk:a\\cb\\x\n\n\0", Frame("MESSAGE", (("k", "a\\cb\\x"),)), "1.0")


@pytest.mark.parametrize("command", ["CONNECT", "CONNECTED"])
def test_connect_and_connected_headers_are_never_escaped(command: str) -> None:
    frame = Frame(command, (("login", "dom\\user"), ("passcode", "a:b\\c")))
    assert_frame_data(f"{command}\nlogin:dom\\user\npasscode:a:b\\c\n\n\0".encode(), frame)


def test_crlf_line_ends_decode_like_lf() -> None:
    frame = decode_one(b"SEND\r\ndestination:/queue/a\r\nx:y\r\n\r\nbody\0")
    assert frame == Frame("SEND", (("destination", "/queue/a"), ("x", "y")), b"body")


def test_mixed_line_ends() -> None:
    frame = decode_one(b"SEND\ndestination:/q/a\r\n\nbody\0")
    assert frame == Frame("SEND", (("destination", "/q/a"),), b"body")


def test_repeated_headers_kept_in_order_and_first_wins() -> None:
    frame = Frame("MESSAGE", (("foo", "World"), ("foo", "Hello")))
    assert_frame_data(b"MESSAGE\nfoo:World\nfoo:Hello\n\n\0", frame)
    assert frame.get("foo") == "World"
    assert frame.get("bar") is None
    assert frame.get("bar", "x") == "x"


def test_repeated_content_length_first_wins() -> None:
    frame = decode_one(b"SEND\ncontent-length:2\ncontent-length:9\n\nab\0")
    assert frame.body == b"ab"


def test_heartbeat_eols_between_frames() -> None:
    decoder = FrameDecoder()
    frames = decoder.feed(b"\n\r\n\nSEND\ndestination:/a\n\nx\0\n\r\nDISCONNECT\n\n\0\n")
    assert [f.command for f in frames] == ["SEND", "DISCONNECT"]
    assert decoder.heartbeats == 6
    assert decoder.buffered == 0


def test_text_input_is_utf8_and_lengths_count_bytes() -> None:
    frame = decode_one("SEND\ndestination:/a\ncontent-length:4\n\nçé\0")
    assert frame.text == "çé"


def test_partial_frames_wait_for_more() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"SEND\ndestination:/a\ncontent-len") == []
    assert decoder.feed(b"gth:3\n\nab") == []
    assert decoder.feed(b"c") == []
    assert decoder.feed(b"\0SEND\n\n\0") == [
        Frame("SEND", (("destination", "/a"), ("content-length", "3")), b"abc"),
        Frame("SEND"),
    ]


def test_a_cr_split_from_its_lf_between_frames_waits() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"\r") == []
    assert decoder.feed(b"\nDISCONNECT\n\n\0") == [Frame("DISCONNECT")]
    assert decoder.heartbeats == 1


def test_version_can_change_between_frames() -> None:
    decoder = FrameDecoder(version="1.0")
    decoder.receive_data(b"SEND\nk:a\\cb\n\n\0SEND\nk:a\\cb\n\n\0")
    first = decoder.next_frame()
    decoder.version = "1.2"
    second = decoder.next_frame()
    assert (first and first.get("k"), second and second.get("k")) == ("a\\cb", "a:b")


def test_build_and_text() -> None:
    frame = Frame.build("SEND", [("destination", "/a"), ("content-length", "99")], "hé")
    assert frame.headers == (("destination", "/a"), ("content-length", "3"))
    assert frame.text == "hé"
    assert Frame.build("SEND", {"destination": "/a"}).headers == (("destination", "/a"),)


# -- malformed input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"FOO\n\n\0", "unknown command"),
        (b"send\n\n\0", "unknown command"),
        (b"SEND\nnocolon\n\n\0", "malformed header"),
        (b"SEND\n:value\n\n\0", "malformed header"),
        (b"SEND\nk:v\0x\n\n\0", "malformed header"),
        (b"SEND\nk:\\t\n\n\0", "invalid escape"),
        (b"SEND\nk:trailing\\\n\n\0", "invalid escape"),
        (b"SEND\ncontent-length:abc\n\n\0", "invalid content-length"),
        (b"SEND\ncontent-length:-1\n\n\0", "invalid content-length"),
        (b"SEND\ncontent-length: 1\n\nx\0", "invalid content-length"),
        (b"SEND\ncontent-length:\xd9\xa1\n\nx\0", "invalid content-length"),
        (b"SEND\ncontent-length:1\n\nxy\0", "not followed by NUL"),
        (b"SUBSCRIBE\nid:1\n\nbody\0", "must not have a body"),
        (b"SEND\nk:\xff\n\n\0", "not valid UTF-8"),
        (b"\xffSEND\n\n\0", "not valid UTF-8"),
        (b"\rSEND\n\n\0", "CR between frames"),
    ],
)
def test_malformed_frames_raise_frame_error(data: bytes, message: str) -> None:
    decoder = FrameDecoder()
    with pytest.raises(FrameError, match=message):
        decoder.feed(data)
    with pytest.raises(FrameError, match=message):  # and stays broken
        decoder.feed(b"DISCONNECT\n\n\0")


def test_lone_surrogate_text_raises_frame_error() -> None:
    with pytest.raises(FrameError, match="surrogate"):
        FrameDecoder().feed("SEND\n\n\ud800\0")


def test_documented_errors_are_remote_protocol_errors() -> None:
    assert issubclass(FrameError, StompError)
    assert issubclass(LimitExceeded, StompError)
    assert issubclass(StompError, RemoteProtocolError)


# -- limits -------------------------------------------------------------------------------

LIMITS = FrameLimits(max_frame_bytes=100, max_headers=3, max_header_bytes=20)


def test_frame_at_size_limit_passes_and_one_more_byte_fails() -> None:
    head = b"SEND\n\n"  # the command counts: 4 bytes
    assert FrameDecoder(LIMITS).feed(head + b"x" * 96 + b"\0")[0].body == b"x" * 96
    with pytest.raises(LimitExceeded, match="frame too large"):
        FrameDecoder(LIMITS).feed(head + b"x" * 97 + b"\0")


def test_body_without_nul_is_refused_before_it_is_all_buffered() -> None:
    decoder = FrameDecoder(LIMITS)
    decoder.feed(b"SEND\n\n" + b"x" * 90)
    with pytest.raises(LimitExceeded, match="frame too large"):
        decoder.feed(b"x" * 10)


def test_content_length_over_the_limit_fails_before_the_body_arrives() -> None:
    with pytest.raises(LimitExceeded, match="frame too large"):
        FrameDecoder(LIMITS).feed(b"SEND\ncontent-length:97\n\n")
    with pytest.raises(LimitExceeded, match="frame too large"):
        FrameDecoder(FrameLimits(100, 3, 40)).feed(b"SEND\ncontent-length:9999999999\n\n")


def test_header_count_limit() -> None:
    assert FrameDecoder(LIMITS).feed(b"SEND\na:1\nb:2\nc:3\n\n\0")
    with pytest.raises(LimitExceeded, match=r"too many headers \(limit 3\)"):
        FrameDecoder(LIMITS).feed(b"SEND\na:1\nb:2\nc:3\nd:4\n\n\0")


def test_header_length_limit_applies_to_complete_and_partial_lines() -> None:
    assert FrameDecoder(LIMITS).feed(b"SEND\nk:" + b"v" * 18 + b"\n\n\0")
    with pytest.raises(LimitExceeded, match=r"header too long \(limit 20 bytes\)"):
        FrameDecoder(LIMITS).feed(b"SEND\nk:" + b"v" * 19 + b"\n\n\0")
    decoder = FrameDecoder(LIMITS)
    with pytest.raises(LimitExceeded, match="header too long"):
        decoder.feed(b"SEND\nk:" + b"v" * 40)  # no LF yet: refused without waiting


def test_headers_count_towards_frame_size() -> None:
    limits = FrameLimits(max_frame_bytes=30, max_headers=10, max_header_bytes=20)
    with pytest.raises(LimitExceeded, match="frame too large"):
        FrameDecoder(limits).feed(b"SEND\n" + b"k:123456789\n" * 3 + b"\n\0")


# -- encoder refusals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (Frame("PING"), "unknown STOMP command"),
        (Frame("SUBSCRIBE", (), b"x"), "cannot have a body"),
        (Frame("SEND", (), b"a\0b"), "needs a content-length"),
        (Frame("SEND", (("content-length", "9"),), b"ab"), "content-length 9"),
        (Frame("CONNECT", (("login", "a\nb"),)), "cannot be sent unescaped"),
        (Frame("CONNECT", (("a:b", "x"),)), "cannot hold ':'"),
        (Frame("SEND", (("", "x"),)), "cannot be empty"),
        (Frame("SEND", (("k", "a\0b"),)), "NUL"),
        (Frame("SEND", (("k", "\ud800"),)), "surrogates"),
    ],
)
def test_encoder_refuses_what_it_cannot_represent(frame: Frame, message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        encode(frame)


def test_1_0_cannot_carry_a_newline_in_a_header() -> None:
    with pytest.raises(LocalProtocolError):
        encode(Frame("MESSAGE", (("k", "a\nb"),)), "1.0")


# -- properties ---------------------------------------------------------------------------

header_text = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=12)
plain_text = st.text(st.characters(codec="utf-8", exclude_characters="\0\r\n:"), max_size=12)


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    command = draw(st.sampled_from(sorted(CLIENT_COMMANDS | SERVER_COMMANDS)))
    names = plain_text if command in ("CONNECT", "CONNECTED") else header_text
    values = (
        st.text(st.characters(codec="utf-8", exclude_characters="\0\r\n"), max_size=12)
        if command
        in (
            "CONNECT",
            "CONNECTED",
        )
        else header_text
    )
    headers = draw(st.lists(st.tuples(names.filter(bool), values), max_size=5))
    headers = [(k, v) for k, v in headers if k != "content-length"]
    body = draw(st.binary(max_size=40)) if command in BODY_COMMANDS else b""
    return Frame.build(command, headers, body)


@given(frames())
def test_property_round_trip(frame: Frame) -> None:
    data = encode(frame)
    assert FrameDecoder().feed(data) == [frame]
    assert encode(FrameDecoder().feed(data)[0]) == data


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@given(
    st.lists(frames(), min_size=1, max_size=4),
    st.lists(st.sampled_from([b"", b"\n", b"\r\n", b"\n\n"]), min_size=4, max_size=4),
    st.lists(st.integers(min_value=0), max_size=30),
)
def test_property_any_chunking_parses_the_same(
    batch: list[Frame], eols: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(eol + encode(frame) for frame, eol in zip(batch, eols, strict=False))
    decoder = FrameDecoder()
    parsed = [frame for chunk in split(data, cuts) for frame in decoder.feed(chunk)]
    assert parsed == batch
    assert parsed == FrameDecoder().feed(data)
    assert decoder.buffered == 0


def parse_all(
    chunks: list[bytes] | list[str], limits: FrameLimits
) -> tuple[list[Frame], type | None]:
    """Every frame before the first error, and the error's class (or None). Only the
    documented errors are caught: anything else fails the test."""
    decoder = FrameDecoder(limits)
    parsed: list[Frame] = []
    try:
        for chunk in chunks:
            decoder.receive_data(chunk)
            while (frame := decoder.next_frame()) is not None:
                parsed.append(frame)
    except StompError as error:
        return parsed, type(error)
    return parsed, None


small_limits = st.sampled_from([FrameLimits(), FrameLimits(60, 3, 16)])


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=10), small_limits)
def test_property_any_bytes_parse_or_raise_frame_error(
    data: bytes, cuts: list[int], limits: FrameLimits
) -> None:
    whole = parse_all([data], limits)  # anything but FrameError would escape and fail here
    assert parse_all(split(data, cuts), limits) == whole


@given(st.text(max_size=300), small_limits)
def test_property_any_text_parses_or_raises_frame_error(text: str, limits: FrameLimits) -> None:
    parse_all([text], limits)


stompish = st.lists(
    st.sampled_from(
        [
            b"SEND",
            b"MESSAGE",
            b"CONNECT",
            b"\n",
            b"\r\n",
            b"\0",
            b":",
            b"\\c",
            b"\\",
            b"a",
            b"content-length:",
            b"3",
            b"0",
            b"\xc3",
            b"\xa9",
        ]
    ),
    max_size=60,
).map(b"".join)


@given(stompish, st.lists(st.integers(min_value=0), max_size=10), small_limits)
def test_property_stomp_like_bytes_parse_or_raise_the_same_in_any_chunking(
    data: bytes, cuts: list[int], limits: FrameLimits
) -> None:
    assert parse_all(split(data, cuts), limits) == parse_all([data], limits)
